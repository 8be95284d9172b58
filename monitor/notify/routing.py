"""The routing tree, with Alertmanager's semantics.

An alert enters at the root (which matches everything) and descends depth-first: the
first child whose matchers accept it takes it, and the search stops there unless that
child says ``continue = true``, in which case the next matching siblings take it too.
A node none of whose children match is itself the match. Children inherit
``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and ``repeat_interval``
from their parent; ``mute_time_intervals``/``active_time_intervals`` are per node.

Grouping: alerts that reach the same node with the same values of the ``group_by``
labels form one group (``group_by = ["..."]`` groups by every label). The group key is
``<route key>:<group labels>``, as Alertmanager writes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.matchers import MatcherSet
from monitor.notify.config import RouteConfig
from monitor.textsafe import one_line

DEFAULT_GROUP_BY: tuple[str, ...] = ("alertname",)
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
GROUP_KEY_LIMIT = 500


@dataclass(frozen=True)
class RouteOptions:
    """The settings in force at one node after inheritance."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()

    @property
    def group_by_all(self) -> bool:
        return self.group_by == ("...",)


@dataclass(frozen=True)
class Route:
    """One compiled node of the routing tree."""

    key: str
    matchers: MatcherSet
    continue_: bool
    options: RouteOptions
    routes: tuple[Route, ...] = ()

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Return the nodes that take an alert with ``labels`` (empty: this node does not).

        Steps: 1. this node must match; 2. try the children in order, collecting their
        matches and stopping after a matching child without ``continue``; 3. with no
        child match, this node is the match.
        """
        if not self.matchers.matches(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self]

    def walk(self) -> list[Route]:
        """Return this node and every descendant, depth first."""
        out = [self]
        for child in self.routes:
            out.extend(child.walk())
        return out


def build_tree(config: RouteConfig) -> Route:
    """Return the compiled routing tree of the root route ``config``."""
    root_options = RouteOptions(
        receiver=config.receiver or "",
        group_by=tuple(config.group_by) if config.group_by is not None else DEFAULT_GROUP_BY,
        group_wait=_or(config.group_wait, DEFAULT_GROUP_WAIT),
        group_interval=_or(config.group_interval, DEFAULT_GROUP_INTERVAL),
        repeat_interval=_or(config.repeat_interval, DEFAULT_REPEAT_INTERVAL),
        mute_time_intervals=tuple(config.mute_time_intervals),
        active_time_intervals=tuple(config.active_time_intervals),
    )
    return _node(config, root_options, "{}", root=True)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _node(config: RouteConfig, options: RouteOptions, key: str, *, root: bool = False) -> Route:
    children: list[Route] = []
    seen: dict[str, int] = {}
    for child in config.routes:
        child_options = RouteOptions(
            receiver=child.receiver if child.receiver is not None else options.receiver,
            group_by=tuple(child.group_by) if child.group_by is not None else options.group_by,
            group_wait=_or(child.group_wait, options.group_wait),
            group_interval=_or(child.group_interval, options.group_interval),
            repeat_interval=_or(child.repeat_interval, options.repeat_interval),
            mute_time_intervals=tuple(child.mute_time_intervals),
            active_time_intervals=tuple(child.active_time_intervals),
        )
        matchers = MatcherSet.parse(child.matchers)
        child_key = f"{key}/{matchers}"
        # Siblings with identical matchers would share group keys; number the repeats.
        count = seen.get(child_key, 0)
        seen[child_key] = count + 1
        if count:
            child_key += f"#{count}"
        children.append(_node(child, child_options, child_key))
    return Route(key=key, matchers=MatcherSet() if root else MatcherSet.parse(config.matchers),
                 continue_=config.continue_, options=options, routes=tuple(children))


def group_labels(options: RouteOptions, labels: Mapping[str, str]) -> dict[str, str]:
    """Return the labels that identify the alert's group at a node with ``options``.

    Labels named in ``group_by`` but absent from the alert are left out.
    """
    if options.group_by_all:
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(options.group_by) if name in labels}


def group_key(route: Route, labels: Mapping[str, str]) -> str:
    """Return ``<route key>:{name="value",…}``, hashed past 500 characters."""
    text = "{" + ",".join(f'{k}="{_quote(v)}"' for k, v in sorted(labels.items())) + "}"
    key = f"{route.key}:{text}"
    if len(key) <= GROUP_KEY_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{key[:GROUP_KEY_LIMIT - 36]}…#{digest}"


def _quote(value: str) -> str:
    """Return a label value quoted for a group key: ``\\`` and ``"`` escaped, and every
    control character (``\\n``, ``\\r``…) shown escaped, so a key is always one line."""
    return one_line(value.replace("\\", "\\\\").replace('"', '\\"'))
