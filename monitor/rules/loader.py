"""Loading rule files: YAML with positions, schema validation and cross-references.

:func:`load_rules` reads every file and reports every problem at once, each as
``rules/x.yaml:12:5: rule "BurglaryRising": unknown indicator "burglery" (did you mean
"burglary"?)``. A rule set that loads is internally consistent: every indicator named
exists, derived indicators form no cycle, templates compile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.errors import Problem, RuleFileError
from monitor.rules.schema import LEAVES, Group, Indicator, PeerGroup, Rule, RuleFile, suggest
from monitor.rules.templating import compile_template

Position = tuple[int, int]
KeyPath = tuple[Any, ...]
CONDITION_KINDS = frozenset({*LEAVES, "all", "any", "not"})


@dataclass(frozen=True)
class LoadedRule:
    rule: Rule
    group: str
    file: str
    line: int
    interval: float | None
    definition: str = ""  # the rule as its file writes it (YAML, without comments)


@dataclass
class RuleSet:
    """Everything the rule files define, checked and ready to evaluate."""

    indicators: dict[str, Indicator] = field(default_factory=dict)
    peer_groups: dict[str, PeerGroup] = field(default_factory=dict)
    rules: list[LoadedRule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def children_of(self, indicator: str) -> list[Indicator]:
        return [i for i in self.indicators.values() if i.parent == indicator]

    def groups(self) -> dict[str, list[LoadedRule]]:
        out: dict[str, list[LoadedRule]] = {}
        for loaded in self.rules:
            out.setdefault(loaded.group, []).append(loaded)
        return out


class _PositionLoader(yaml.SafeLoader):
    """A safe loader; positions are collected from the composed node tree."""


def _walk(node: yaml.Node, path: KeyPath, positions: dict[KeyPath, Position]) -> Any:
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            # Keys are names: `on:` is the string "on", not YAML 1.1's boolean true.
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a name, not a list or a mapping",
                    key_node.start_mark)
            key = key_node.value
            positions[(*path, key)] = (key_node.start_mark.line + 1,
                                       key_node.start_mark.column + 1)
            out[key] = _walk(value_node, (*path, key), positions)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*path, i), positions) for i, item in enumerate(node.value)]
    loader = _PositionLoader("")
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, shown: str) -> tuple[Any, dict[KeyPath, Position]]:
    """Return (data, positions of every key path). Raises RuleFileError for bad YAML."""
    positions: dict[KeyPath, Position] = {}
    try:
        node = yaml.compose(text, Loader=_PositionLoader)
        data = {} if node is None else _walk(node, (), positions)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError([Problem(shown, line, column, "", f"not valid YAML: {problem}")]) \
            from None
    return data, positions


def _nearest(path: KeyPath, positions: dict[KeyPath, Position]) -> Position | None:
    for end in range(len(path), -1, -1):
        if path[:end] in positions:
            return positions[path[:end]]
    return None


def _subject(path: KeyPath, data: Any) -> str:
    """Name what a key path is inside: ``rule "X"``, ``indicator "y"``, ``group "z"``."""
    try:
        if path[:1] == ("groups",) and len(path) >= 2:
            group = data["groups"][path[1]]
            if len(path) >= 4 and path[2] == "rules":
                return f'rule "{group["rules"][path[3]].get("alert", f"#{path[3] + 1}")}"'
            return f'group "{group.get("name", f"#{path[1] + 1}")}"'
        if path[:1] == ("indicators",) and len(path) >= 2:
            return f'indicator "{data["indicators"][path[1]].get("id", f"#{path[1] + 1}")}"'
        if path[:1] == ("peer_groups",) and len(path) >= 2:
            return f'peer group "{data["peer_groups"][path[1]].get("id", f"#{path[1] + 1}")}"'
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    return ""


def _field_path(path: KeyPath, start: int) -> str:
    text = ""
    for part in path[start:]:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _clean_loc(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """Turn a pydantic location into a key path in the YAML data.

    A condition's errors are located inside its kind's mapping (``when.peers.over``,
    ``when.all[1].level.above``), which pydantic's location leaves out."""
    out: list[Any] = []
    node = data
    skip_index = False
    for part in loc:
        if isinstance(part, str) and part in ("function-after[_parse(), Condition]",):
            continue
        if skip_index and isinstance(part, int):
            skip_index = False
            continue
        if part == "for_":
            part = "for"
        if isinstance(node, dict) and len(node) == 1 and part not in node \
                and next(iter(node)) in CONDITION_KINDS:
            kind = next(iter(node))
            out.append(kind)
            node = node[kind]
            if part == "children":
                skip_index = kind == "not"  # not: {…} is the one child, at index 0
                continue
            if part in ("kind", "leaf"):
                continue
        if isinstance(node, dict) and part not in node:
            if part in ("kind", "leaf", "children") or str(part).startswith(("function-",
                                                                              "Condition")):
                continue
            out.append(part)
            node = None
            continue
        out.append(part)
        if isinstance(node, dict | list):
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                node = None
    return tuple(out)


def _rule_field_start(path: KeyPath) -> int:
    if path[:1] == ("groups",) and len(path) >= 4 and path[2] == "rules":
        return 4
    if path[:1] in (("indicators",), ("peer_groups",)) or path[:1] == ("groups",):
        return 2
    return 0


def _validation_problems(shown: str, exc: Any, data: Any,
                         positions: dict[KeyPath, Position]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        path = _clean_loc(tuple(err["loc"]), data)
        named = re.match(r"unknown condition '([^']+)'", str(err["msg"]).removeprefix(
            "Value error, "))
        spot: Position | None = _nearest(path, positions)
        if named and (*path, named.group(1)) in positions:
            spot = positions[(*path, named.group(1))]
        line, column = spot if spot else (None, None)
        subject = _subject(path, data)
        where_field = _field_path(path, _rule_field_start(path))
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown key {path[-1]!r}"
            where_field = _field_path(path[:-1], _rule_field_start(path))
        elif err["type"] == "missing":
            message = f"missing required key {path[-1]!r}"
            where_field = _field_path(path[:-1], _rule_field_start(path))
        if where_field:
            message = f"{where_field}: {message}"
        problems.append(Problem(shown, line, column, subject, message))
    return problems


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Return the rule files under ``paths`` (files as given, folders searched for *.yaml)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")
                                and not p.name.endswith((".test.yaml", ".test.yml"))))
        else:
            found.append(path)
    return found


def load_rules(paths: Iterable[str | Path], *, known_labels: set[str] | None = None) -> RuleSet:
    """Return the checked rule set from every file under ``paths``.

    Raises RuleFileError carrying every problem found in every file.
    """
    problems: list[Problem] = []
    ruleset = RuleSet()
    where_defined: dict[str, tuple[str, Position]] = {}
    rule_refs: list[tuple[str, Position, str, str, str]] = []  # file, pos, subject, field, name
    seen_alerts: dict[tuple[str, str], str] = {}
    for path in rule_files(paths):
        shown = str(path)
        ruleset.files.append(shown)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(Problem(shown, None, None, "", f"cannot read: {exc.strerror}"))
            continue
        try:
            data, positions = parse_yaml(text, shown)
        except RuleFileError as exc:
            problems.extend(exc.problems)
            continue
        if data is None or data == {}:
            continue
        if not isinstance(data, dict):
            problems.append(Problem(shown, 1, 1, "", "a rule file is a mapping with keys "
                                    "indicators, peer_groups and groups"))
            continue
        parsed, origin = _validate_items(shown, data, positions, problems)
        for k, indicator in enumerate(parsed.indicators):
            i = origin[k]
            pos = positions.get(("indicators", i), (1, 1))
            if indicator.id in ruleset.indicators:
                other = where_defined[indicator.id]
                problems.append(Problem(shown, *pos, f'indicator "{indicator.id}"',
                                        f"defined twice (first at {other[0]}:{other[1][0]})"))
                continue
            ruleset.indicators[indicator.id] = indicator
            where_defined[indicator.id] = (shown, pos)
            subject = f'indicator "{indicator.id}"'
            if indicator.parent:
                rule_refs.append((shown, positions.get(("indicators", i, "parent"), pos),
                                  subject, "parent", indicator.parent))
            for j, name in enumerate(indicator.rank.parts):
                rule_refs.append((shown, positions.get(("indicators", i, "rank", "parts", j),
                                                       pos), subject, "rank.parts", name))
            for j, name in enumerate(indicator.companions):
                rule_refs.append((shown, positions.get(("indicators", i, "companions", j), pos),
                                  subject, "companions", name))
            if indicator.derived:
                for j, name in enumerate(indicator.derived.inputs):
                    key = _derived_key(indicator, j)
                    rule_refs.append((shown, positions.get(("indicators", i, "derived", *key),
                                                           pos), subject, "derived", name))
        for peer in parsed.peer_groups:
            ruleset.peer_groups[peer.id] = peer
        for gi, group in enumerate(parsed.groups):
            if group is None:
                continue
            _check_group(shown, gi, group, positions, problems, rule_refs, seen_alerts, ruleset,
                         _raw_rules(data, gi))
    for shown, pos, subject, field_name, name in rule_refs:
        if field_name == "peer_group":
            if name not in ruleset.peer_groups:
                problems.append(Problem(shown, *pos, subject, f'unknown peer group "{name}"'
                                        f"{suggest(name, list(ruleset.peer_groups))}"))
        elif name not in ruleset.indicators:
            problems.append(Problem(shown, *pos, subject, f'unknown indicator "{name}"'
                                    f"{suggest(name, list(ruleset.indicators))}"))
        elif field_name == "rank.parts" and ruleset.indicators[name].rank.over is None:
            problems.append(Problem(shown, *pos, subject, f'rank.parts: indicator "{name}" '
                                    "has no rank.over; give it the window its rank is over"))
    for indicator in ruleset.indicators.values():
        if indicator.peer_group and indicator.peer_group not in ruleset.peer_groups:
            file, pos = where_defined[indicator.id]
            problems.append(Problem(file, *pos, f'indicator "{indicator.id}"',
                                    f'unknown peer group "{indicator.peer_group}"'
                                    f"{suggest(indicator.peer_group, list(ruleset.peer_groups))}"))
    problems.extend(_cycles(ruleset, where_defined))
    if problems:
        problems.sort(key=lambda p: (p.path, p.line or 0, p.column or 0))
        raise RuleFileError(problems)
    return ruleset


def _validate_items(shown: str, data: dict[str, Any], positions: dict[KeyPath, Position],
                    problems: list[Problem]) -> tuple[RuleFile, list[int]]:
    """Validate item by item, so one bad rule does not hide the problems of the others.

    Returns the valid items and, for each valid indicator, its index in the file."""
    for key in data:
        if key not in RuleFile.model_fields:
            line, column = positions.get((key,), (1, 1))
            problems.append(Problem(shown, line, column, "", f"unknown top-level key {key!r}; "
                                    "a rule file has indicators, peer_groups and groups"
                                    f"{suggest(str(key), list(RuleFile.model_fields))}"))
    items: dict[str, list[Any]] = {"indicators": [], "peer_groups": [], "groups": []}
    origin: list[int] = []
    models: dict[str, Any] = {"indicators": Indicator, "peer_groups": PeerGroup}
    for key in items:
        values = data.get(key) or []
        if not isinstance(values, list):
            line, column = positions.get((key,), (1, 1))
            problems.append(Problem(shown, line, column, "", f"{key}: expected a list"))
            continue
        for i, value in enumerate(values):
            try:
                if key == "groups":
                    items[key].append(_validate_group(value, i, data, shown, positions,
                                                       problems))
                else:
                    items[key].append(models[key].model_validate(value))
                    if key == "indicators":
                        origin.append(i)
            except ValidationError as exc:
                problems.extend(_validation_problems(
                    shown, _relocate(exc, (key, i)), data, positions))
                if key == "groups":
                    items[key].append(None)  # keeps the indices of later groups
    return RuleFile(indicators=items["indicators"], peer_groups=items["peer_groups"],
                    groups=items["groups"]), origin


class _Relocated(Exception):
    def __init__(self, errors: list[Any]) -> None:
        self._errors = errors

    def errors(self) -> list[Any]:
        return self._errors


def _relocate(exc: ValidationError | _Relocated, prefix: KeyPath) -> Any:
    return _Relocated([{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()])


def _validate_group(value: Any, gi: int, data: Any, shown: str,
                    positions: dict[KeyPath, Position], problems: list[Problem]) -> Group | None:
    if not isinstance(value, dict):
        return Group.model_validate(value)
    rules_raw = value.get("rules") or []
    header = {k: v for k, v in value.items() if k != "rules"}
    group = Group.model_validate({**header, "rules": []})
    rules: list[Rule | None] = []
    if not isinstance(rules_raw, list):
        line, column = positions.get(("groups", gi, "rules"), (1, 1))
        problems.append(Problem(shown, line, column, f'group "{group.name}"',
                                "rules: expected a list"))
        return group
    for ri, raw in enumerate(rules_raw):
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError as exc:
            problems.extend(_validation_problems(
                shown, _relocate(exc, ("groups", gi, "rules", ri)), data, positions))
            rules.append(None)
    return group.model_copy(update={"rules": rules})  # None marks a rule reported above


def _derived_key(indicator: Indicator, j: int) -> KeyPath:
    derived = indicator.derived
    assert derived is not None
    if derived.sum is not None:
        return ("sum", j)
    if derived.difference is not None:
        return ("difference", j)
    return ("ratio", "numerator" if j == 0 else "denominator")


def _check_group(shown: str, gi: int, group: Group, positions: dict[KeyPath, Position],
                 problems: list[Problem], refs: list[tuple[str, Position, str, str, str]],
                 seen: dict[tuple[str, str], str], ruleset: RuleSet,
                 raws: list[Any]) -> None:
    for ri, rule in enumerate(group.rules):
        if rule is None:
            continue
        base = ("groups", gi, "rules", ri)
        pos = positions.get(base, (1, 1))
        subject = f'rule "{rule.alert}"'
        key = (group.name, rule.alert)
        if key in seen:
            problems.append(Problem(shown, *pos, subject, f'defined twice in group '
                                    f'"{group.name}" (first at {seen[key]})'))
        seen[key] = f"{shown}:{pos[0]}"
        if rule.indicator:
            refs.append((shown, positions.get((*base, "indicator"), pos), subject, "indicator",
                         rule.indicator))
        elif any(not hasattr(leaf, "source") for leaf in rule.when.leaves()):
            problems.append(Problem(shown, *pos, subject, "indicator: missing; every condition "
                                    "but milestones needs the indicator whose series it alerts on"))
        for path, leaf in _leaves_with_paths(rule.when, (*base, "when")):
            name = getattr(leaf, "indicator", None)
            if name:
                refs.append((shown, positions.get((*path, "indicator"),
                                                  positions.get(path, pos)), subject,
                             "indicator", name))
        for name, template in rule.annotations.items():
            error = compile_template(template)
            if error:
                apos = positions.get((*base, "annotations", name), pos)
                problems.append(Problem(shown, *apos, subject,
                                        f"annotations.{name}: template does not compile: {error}"))
        definition = yaml.safe_dump(raws[ri], sort_keys=False, allow_unicode=True,
                                    width=100) if ri < len(raws) else ""
        ruleset.rules.append(LoadedRule(rule, group.name, shown, pos[0], group.interval,
                                        definition))


def _raw_rules(data: Any, gi: int) -> list[Any]:
    """Return the rules of group ``gi`` as the file wrote them (mappings)."""
    groups = data.get("groups") if isinstance(data, dict) else None
    group = groups[gi] if isinstance(groups, list) and gi < len(groups) else None
    rules = group.get("rules") if isinstance(group, dict) else None
    return rules if isinstance(rules, list) else []


def _leaves_with_paths(condition: Any, path: KeyPath) -> list[tuple[KeyPath, Any]]:
    if condition.leaf is not None:
        return [((*path, condition.kind), condition.leaf)]
    out: list[tuple[KeyPath, Any]] = []
    for i, child in enumerate(condition.children):
        child_path = (*path, condition.kind) if condition.kind == "not" else \
            (*path, condition.kind, i)
        out.extend(_leaves_with_paths(child, child_path))
    return out


def _cycles(ruleset: RuleSet, where: dict[str, tuple[str, Position]]) -> list[Problem]:
    problems: list[Problem] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2 or name not in ruleset.indicators:
            return
        if state.get(name) == 1:
            cycle = [*trail[trail.index(name):], name]
            file, pos = where[name]
            problems.append(Problem(file, *pos, f'indicator "{name}"',
                                    "derived indicators form a cycle: " + " -> ".join(cycle)))
            return
        state[name] = 1
        derived = ruleset.indicators[name].derived
        for child in derived.inputs if derived else []:
            visit(child, [*trail, name])
        state[name] = 2

    for name in ruleset.indicators:
        visit(name, [])
    return problems
