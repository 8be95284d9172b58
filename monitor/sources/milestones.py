"""A plan of milestones (CSV, YAML or JSON), such as a counter-terrorism plan's.

Each milestone has ``id``, ``title``, ``owner``, ``due`` (ISO date), ``status``
(``not_started``, ``in_progress`` or ``done``) and ``completed`` (ISO date, or empty).
YAML and JSON plans are a list under ``key`` (default ``milestones``) or a top-level
list. The stored plan is made equal to the file; when any row is rejected, milestones
missing from the file are kept rather than removed.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Any, Literal

import yaml

from monitor.errors import PayloadError
from monitor.model import Milestone, RowProblem
from monitor.sources.base import FileOrUrl, Parsed, Payload, Source, SourceBase
from monitor.sources.http import HttpOptions
from monitor.sources.json import load_document
from monitor.sources.mapping import check_header, decode, html_error, is_html
from monitor.store.sourcestate import Validators


class MilestonesSource(SourceBase, FileOrUrl, HttpOptions):
    """A plan of milestones (id, title, owner, due, status, completed) in CSV, YAML or JSON."""

    kind: Literal["milestones"]
    format: Literal["auto", "csv", "yaml", "json"] = "auto"
    key: str = "milestones"
    encoding: str = "utf-8-sig"

STATUSES = ("not_started", "in_progress", "done")
REQUIRED = ("id", "title", "owner", "due", "status")


class MilestonesKind(Source[MilestonesSource]):
    """``kind = "milestones"``."""

    kind = "milestones"
    config_type = MilestonesSource

    def fetch(self, previous: Validators) -> Payload:
        return self.fetch_file_or_url(previous, "text/csv, application/yaml, application/json")

    def parse(self, payload: Payload) -> Parsed:
        return parse_milestones(self.config, payload.body, origin=payload.origin,
                                content_type=payload.content_type)


def plan_format(config: MilestonesSource, origin: str, content_type: str) -> str:
    """Return ``csv``, ``yaml`` or ``json``: configured, else from the name or content type."""
    if config.format != "auto":
        return config.format
    suffix = PurePosixPath(origin.split("?", 1)[0]).suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json" or "json" in content_type:
        return "json"
    if suffix == ".csv" or "csv" in content_type:
        return "csv"
    if "yaml" in content_type:
        return "yaml"
    raise PayloadError(f"source {config.name!r}: cannot tell the format of {origin}; set "
                       "format = \"csv\", \"yaml\" or \"json\"")


def parse_milestones(config: MilestonesSource, body: bytes, *, origin: str,
                     content_type: str = "") -> Parsed:
    """Return the milestones of a plan and the rows rejected.

    Raises PayloadError when the body is HTML, not in its format, or lacks a required
    column (CSV) or the list of milestones (YAML/JSON).
    """
    source = config.name
    if is_html(body, content_type):
        raise html_error(source, origin, body, "a milestone plan")
    kind = plan_format(config, origin, content_type)
    records: list[tuple[int | str, Any]]
    if kind == "csv":
        text = decode(source, origin, body, config.encoding)
        reader = csv.DictReader(io.StringIO(text, newline=""))
        check_header(source, f"{origin} header (line 1)",
                     [h.strip() for h in reader.fieldnames or []],
                     [(name, "milestone field") for name in REQUIRED])
        try:
            records = [(reader.line_num, {(k or "").strip(): v for k, v in row.items()})
                       for row in reader]
        except csv.Error as exc:
            raise PayloadError(f"source {source!r}: {origin} line {reader.line_num}: not valid "
                               f"CSV ({exc})") from None
    else:
        if kind == "yaml":
            text = decode(source, origin, body, config.encoding)
            try:
                document = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                at = f" line {mark.line + 1}" if mark is not None else ""
                raise PayloadError(f"source {source!r}: {origin}{at}: not valid YAML: "
                                   f"{getattr(exc, 'problem', exc)}") from None
        else:
            document = load_document(source, origin, body, content_type)
        items = document.get(config.key) if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise PayloadError(f"source {source!r}: {origin} has no list of milestones under "
                               f"{config.key!r}; write \"{config.key}:\" followed by a list")
        records = [(f"{config.key}[{i}]", item) for i, item in enumerate(items)]
    return _milestones(config, records)


def _milestones(config: MilestonesSource, records: list[tuple[int | str, Any]]) -> Parsed:
    source = config.name
    labels = tuple(sorted(config.static_labels.items()))
    problems: list[RowProblem] = []
    found: dict[str, tuple[int | str, Milestone]] = {}
    duplicated: set[str] = set()
    for row, record in records:
        try:
            milestone = _milestone(record, labels)
        except _Bad as bad:
            problems.append(RowProblem(source, row, bad.field, bad.reason, bad.message))
            continue
        if milestone.id in found:
            duplicated.add(milestone.id)
            first_row = found[milestone.id][0]
            problems.append(RowProblem(source, row, "id", "duplicate_id",
                                       f"{milestone.id!r} is also the id on row {first_row}; "
                                       "both are rejected"))
            continue
        found[milestone.id] = (row, milestone)
    for ident in sorted(duplicated):
        first_row, _m = found.pop(ident)
        problems.append(RowProblem(source, first_row, "id", "duplicate_id",
                                   f"{ident!r} is used by more than one milestone; all are "
                                   "rejected"))
    return Parsed(milestones=[m for _row, m in found.values()], problems=problems,
                  rows=len(records))


class _Bad(Exception):
    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field, self.reason, self.message = field, reason, message


def _date(record: dict[str, Any], field: str, required: bool) -> date | None:
    raw = record.get(field)
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = "" if raw is None else str(raw).strip()
    if not text:
        if required:
            raise _Bad(field, "missing_value", f"no {field} date")
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _Bad(field, "bad_date", f"{text!r} is not a date; write it like 2008-07-31"
                   ) from None


def _milestone(record: Any, labels: tuple[tuple[str, str], ...]) -> Milestone:
    if not isinstance(record, dict):
        raise _Bad("milestone", "invalid", f"{record!r} is not a mapping of fields")
    for field in REQUIRED:
        if field not in record:
            raise _Bad(field, "missing_column", f"the milestone has no {field!r}")
    ident = str(record.get("id") or "").strip()
    if not ident:
        raise _Bad("id", "missing_value", "the milestone has no id")
    status = str(record.get("status") or "").strip().lower().replace(" ", "_").replace("-", "_")
    if status not in STATUSES:
        raise _Bad("status", "bad_status",
                   f"{record.get('status')!r} is not one of {', '.join(STATUSES)}")
    due = _date(record, "due", required=True)
    assert due is not None
    completed = _date(record, "completed", required=False)
    if completed is not None and status != "done":
        raise _Bad("completed", "inconsistent",
                   f"completed on {completed} but the status is {status}; set status = done "
                   "or clear completed")
    return Milestone(id=ident, title=str(record.get("title") or "").strip(),
                     owner=str(record.get("owner") or "").strip(), due=due, status=status,
                     completed=completed, labels=labels)
