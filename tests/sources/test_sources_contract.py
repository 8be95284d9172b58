"""The contract every source kind keeps, checked on every kind in the registry.

A kind is registered under its config's ``kind``; ``load_file`` + ``parse`` turn a sample
into observations (or milestones) without the network; ``parse`` is pure (the same payload
gives the same result); and no input, however mangled, makes it raise anything but
PayloadError.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import PayloadError
from monitor.sources import config as config_module
from monitor.sources.base import Parsed, Source
from monitor.sources.registry import KINDS, build


@dataclass(frozen=True)
class Sample:
    config: dict[str, Any]
    filename: str
    body: bytes
    observations: int
    milestones: int | None = None


SAMPLES: dict[str, Sample] = {
    "csv": Sample({"indicator_column": "indicator", "labels": {"force": "force"},
                   "path": "kpis.csv"}, "kpis.csv",
                  b"indicator,force,period,value\nrobbery,Met,2008-04,5\nrobbery,Met,2008-05,6\n",
                  2),
    "json": Sample({"indicator": "satisfaction", "labels": {"force": "force"}, "records": "rows",
                    "path": "kpis.json"}, "kpis.json",
                   json.dumps({"rows": [{"force": "Met", "period": "2008-04", "value": 77},
                                        {"force": "GMP", "period": "2008-04", "value": 80}]}
                              ).encode(), 2),
    "sql": Sample({"url": "sqlite:///nowhere.db", "query": "SELECT 1", "indicator": "robbery",
                   "labels": {"borough": "borough"}}, "export.csv",
                  b"borough,period,value\nCamden,2008-04,120\nHackney,2008-04,150\n", 2),
    "prometheus": Sample({"url": "http://127.0.0.1:9", "query": "up", "indicator": "up_ratio"},
                         "answer.json",
                         json.dumps({"status": "success", "data": {"resultType": "vector",
                                     "result": [{"metric": {}, "value": [1.7e9, "1"]}]}}
                                    ).encode(), 1),
    "police_uk": Sample({"force": "metropolitan"}, "crimes.json",
                        json.dumps([{"id": 1, "month": "2024-01", "category": "burglary"},
                                    {"id": 2, "month": "2024-01", "category": "robbery"}]
                                   ).encode(), 2),
    "milestones": Sample({"path": "plan.yaml"}, "plan.yaml",
                         b"milestones:\n  - {id: A, title: t, owner: o, due: 2008-09-30, "
                         b"status: done, completed: 2008-09-01}\n", 0, 1),
}


def make(kind: str) -> Source[Any]:
    sample = SAMPLES[kind]
    cls = KINDS[kind]
    config = cls.config_type.model_validate({"name": f"{kind}-sample", "kind": kind,
                                             **sample.config})
    return build(config)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def parse_bytes(source: Source[Any], folder: Path, filename: str, body: bytes) -> Parsed:
    path = folder / f"{source.kind}-{filename}"
    path.write_bytes(body)
    return source.parse(source.load_file(path))


def test_it_registers_every_kind_of_the_config_union() -> None:
    union = typing.get_args(typing.get_args(config_module.SourceConfig)[0])
    kinds = {typing.get_args(model.model_fields["kind"].annotation)[0]: model for model in union}
    assert kinds == {kind: cls.config_type for kind, cls in KINDS.items()}
    assert set(SAMPLES) == set(KINDS)


@pytest.mark.parametrize("kind", list(KINDS))
def test_it_parses_a_sample_file_without_the_network(kind: str, folder: Path) -> None:
    sample = SAMPLES[kind]
    source = make(kind)
    assert source.kind == kind
    parsed = parse_bytes(source, folder, sample.filename, sample.body)
    assert parsed.problems == []
    assert len(parsed.observations) == sample.observations
    assert (None if parsed.milestones is None else len(parsed.milestones)) == sample.milestones
    for obs in parsed.observations:
        assert math.isfinite(obs.value)
        assert re.fullmatch(r"[A-Za-z0-9_.:-]+", obs.indicator)
        assert list(obs.labels) == sorted(obs.labels)


@pytest.mark.parametrize("kind", list(KINDS))
def test_it_parses_purely(kind: str, folder: Path) -> None:
    sample = SAMPLES[kind]
    source = make(kind)
    path = folder / f"pure-{sample.filename}"
    path.write_bytes(sample.body)
    payload = source.load_file(path)
    assert source.parse(payload) == source.parse(payload)


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=600))
def test_it_raises_only_payload_errors_on_random_bytes(kind: str, folder: Path,
                                                       garbage: bytes) -> None:
    source = make(kind)
    try:
        parse_bytes(source, folder, SAMPLES[kind].filename, garbage)
    except PayloadError as exc:
        assert str(exc).startswith(f"source '{kind}-sample'")


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_it_raises_only_payload_errors_on_mangled_samples(kind: str, folder: Path,
                                                          data: st.DataObject) -> None:
    body = SAMPLES[kind].body
    cut = data.draw(st.integers(0, len(body)))
    junk = data.draw(st.binary(max_size=20))
    at = data.draw(st.integers(0, cut))
    mangled = body[:at] + junk + body[at:cut]
    source = make(kind)
    try:
        parsed = parse_bytes(source, folder, SAMPLES[kind].filename, mangled)
    except PayloadError:
        return
    for problem in parsed.problems:
        assert problem.source == f"{kind}-sample" and problem.reason and problem.message
