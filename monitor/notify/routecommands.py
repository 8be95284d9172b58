"""``monitor routes show`` and ``monitor routes test``: the routing tree, as amtool shows it.

``show`` prints the compiled tree (``amtool config routes show``): each node's matchers,
receiver, ``group_by``, timings and ``continue``, as inherited. ``test LABELS…`` says which
receiver and which group an alert with those labels reaches (``amtool config routes
test``), through the tree the notifier itself builds (:func:`routing.build_tree`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from monitor.errors import ConfigError, Problem
from monitor.matchers import MatcherError, parse_all
from monitor.notify import routing
from monitor.textsafe import one_line

AddConfigOption = Callable[[argparse.ArgumentParser], None]


def register(sub: Any, add_config_option: AddConfigOption) -> None:
    """Add the ``routes`` command with its ``show`` and ``test`` actions."""
    routes = sub.add_parser("routes", help="show the routing tree; test where an alert goes")
    routes_sub = routes.add_subparsers(dest="routes_command", metavar="ACTION", required=True)
    show = routes_sub.add_parser("show", help="print the routing tree")
    add_config_option(show)
    show.set_defaults(handler=cmd_routes_show)
    test = routes_sub.add_parser(
        "test", help="which receiver and group an alert with these labels reaches")
    test.add_argument("labels", nargs="+", metavar="LABEL",
                      help='the alert\'s labels: name=value or name="value"')
    test.add_argument("--verify-receivers", metavar="R1,R2",
                      help="exit 1 unless exactly these receivers are reached (for CI)")
    test.add_argument("--tree", action="store_true",
                      help="print the tree with the nodes the alert reaches marked")
    add_config_option(test)
    test.set_defaults(handler=cmd_routes_test)


def _tree(args: argparse.Namespace) -> routing.Route:
    settings, _ = args.load_settings(args)
    return routing.build_tree(settings.notify.route)


def cmd_routes_show(args: argparse.Namespace) -> int:
    print_tree(_tree(args), sys.stdout)
    return 0


def parse_labels(texts: Sequence[str]) -> dict[str, str]:
    """Return the labels ``name=value`` / ``name="value"`` arguments give.

    Raises ConfigError naming the argument that is not an equality.
    """
    labels: dict[str, str] = {}
    for text in texts:
        try:
            matchers = parse_all([text])
        except MatcherError as exc:
            raise ConfigError([Problem("", None, None, f"label {text!r}", str(exc))]) from exc
        for m in matchers:
            if m.op != "=":
                raise ConfigError([Problem(
                    "", None, None, f"label {text!r}",
                    f"an alert has label values, not patterns: write {m.name}=VALUE")])
            labels[m.name] = m.value
    return labels


def cmd_routes_test(args: argparse.Namespace) -> int:
    labels = parse_labels(args.labels)
    tree = _tree(args)
    reached = tree.match(labels)
    receivers = [node.options.receiver for node in reached]
    if args.tree:
        print_tree(tree, sys.stdout, marked={node.key for node in reached})
        print()
    print(",".join(receivers))
    for node in reached:
        group = routing.group_labels(node.options, labels)
        print(f"  route {one_line(node.key)}\n"
              f"    receiver {node.options.receiver}, group {_labels_text(group)}\n"
              f"    group_wait {_seconds(node.options.group_wait)}, group_interval "
              f"{_seconds(node.options.group_interval)}, repeat_interval "
              f"{_seconds(node.options.repeat_interval)}")
    if args.verify_receivers is not None:
        wanted = [r.strip() for r in args.verify_receivers.split(",") if r.strip()]
        if wanted != receivers:
            print(f"WARNING: expected receivers {','.join(wanted)}, got {','.join(receivers)}",
                  file=sys.stderr)
            return 1
    return 0


def print_tree(root: routing.Route, out: TextIO, *, marked: set[str] | None = None) -> None:
    """Print the tree as amtool does: one node per line, children indented under it."""
    out.write("Routing tree:\n")
    _print_node(root, out, "", "", marked or set(), root=True)


def _print_node(node: routing.Route, out: TextIO, lead: str, branch: str, marked: set[str],
                *, root: bool = False) -> None:
    options = node.options
    name = "default-route" if root else one_line(str(node.matchers))
    facts = [f"receiver: {options.receiver}",
             f"group_by: [{', '.join(options.group_by)}]"]
    if node.continue_:
        facts.append("continue: true")
    if options.mute_time_intervals:
        facts.append(f"mute: {', '.join(options.mute_time_intervals)}")
    if options.active_time_intervals:
        facts.append(f"active: {', '.join(options.active_time_intervals)}")
    mark = "  <-- matched" if node.key in marked else ""
    out.write(f"{lead}{branch}{name}  {'  '.join(facts)}{mark}\n")
    child_lead = lead + ("" if root else ("    " if branch == "└── " else "│   "))
    for i, child in enumerate(node.routes):
        last = i == len(node.routes) - 1
        _print_node(child, out, child_lead, "└── " if last else "├── ", marked)


def _labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{one_line(v)}"' for k, v in labels.items()) + "}"


def _seconds(value: float) -> str:
    """``30s``, ``5m``, ``4h``, ``1h30m``."""
    total = round(value)
    parts = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts) or "0s"
