"""Milestone plans in CSV, YAML and JSON: every bad row named, the plan kept whole."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from monitor.errors import PayloadError
from monitor.sources.config import MilestonesSource
from monitor.sources.milestones import parse_milestones
from tests.sources.sourcekit import EXAMPLE_DATA


def config(**overrides: Any) -> MilestonesSource:
    return MilestonesSource.model_validate({"name": "ct", "kind": "milestones",
                                            "path": "plan.yaml"} | overrides)


@pytest.mark.parametrize("name", ["ct-milestones.yaml", "ct-milestones.csv"])
def test_it_reads_the_example_plan(name: str) -> None:
    path = EXAMPLE_DATA / name
    parsed = parse_milestones(config(path=str(path)), path.read_bytes(), origin=str(path))
    assert parsed.problems == []
    assert parsed.milestones is not None and len(parsed.milestones) == 12
    first = parsed.milestones[0]
    assert (first.id, first.due, first.status, first.completed) == (
        "CT-01", date(2008, 4, 30), "done", date(2008, 4, 24))
    assert first.state(date(2008, 7, 31)) == "done"


def test_it_reads_a_json_plan_under_its_key() -> None:
    body = json.dumps({"plan": [{"id": "A", "title": "t", "owner": "o", "due": "2008-09-30",
                                 "status": "In Progress", "completed": None}]}).encode()
    parsed = parse_milestones(config(path="plan.json", key="plan"), body, origin="plan.json")
    assert parsed.milestones is not None
    assert [(m.id, m.status) for m in parsed.milestones] == [("A", "in_progress")]


ROWS = "id,title,owner,due,status,completed\n"


@pytest.mark.parametrize(("row", "field", "reason", "message"), [
    pytest.param("B,t,o,30/09/2008,done,", "due", "bad_date",
                 "'30/09/2008' is not a date; write it like 2008-07-31", id="bad-date"),
    pytest.param("B,t,o,2008-09-30,finished,", "status", "bad_status",
                 "'finished' is not one of not_started, in_progress, done", id="bad-status"),
    pytest.param(",t,o,2008-09-30,done,", "id", "missing_value", "the milestone has no id",
                 id="no-id"),
    pytest.param("B,t,o,2008-09-30,in_progress,2008-09-01", "completed", "inconsistent",
                 "completed on 2008-09-01 but the status is in_progress; set status = done or "
                 "clear completed", id="completed-but-open"),
])
def test_it_rejects_a_bad_milestone_naming_its_line(row: str, field: str, reason: str,
                                                    message: str) -> None:
    body = (ROWS + "A,t,o,2008-08-31,not_started,\n" + row + "\n").encode()
    parsed = parse_milestones(config(path="plan.csv"), body, origin="plan.csv")
    assert [(p.row, p.field, p.reason, p.message) for p in parsed.problems] == [
        (3, field, reason, message)]
    assert parsed.milestones is not None and [m.id for m in parsed.milestones] == ["A"]


def test_it_rejects_every_milestone_sharing_an_id() -> None:
    body = (ROWS + "A,t,o,2008-08-31,done,\nA,u,o,2008-09-30,done,\nB,t,o,2008-09-30,done,\n"
            ).encode()
    parsed = parse_milestones(config(path="plan.csv"), body, origin="plan.csv")
    assert parsed.milestones is not None and [m.id for m in parsed.milestones] == ["B"]
    assert sorted((p.row, p.reason) for p in parsed.problems) == [(2, "duplicate_id"),
                                                                   (3, "duplicate_id")]


@pytest.mark.parametrize(("origin", "body", "expected"), [
    pytest.param("plan.csv", b"id,title,due,status\n", "schema drift: column 'owner' "
                 "(milestone field) is missing", id="csv-column-missing"),
    pytest.param("plan.yaml", b"milestones: [unclosed", "not valid YAML", id="broken-yaml"),
    pytest.param("plan.yaml", b"tasks: []\n", "has no list of milestones under 'milestones'",
                 id="wrong-key"),
    pytest.param("plan.txt", b"whatever", "cannot tell the format of plan.txt", id="unknown"),
])
def test_it_refuses_a_plan_it_cannot_read(origin: str, body: bytes, expected: str) -> None:
    with pytest.raises(PayloadError, match=r"^source 'ct'") as caught:
        parse_milestones(config(path=origin), body, origin=origin)
    assert expected in str(caught.value)
