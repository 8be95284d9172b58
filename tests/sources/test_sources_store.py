"""The observation store on SQLite and PostgreSQL: idempotent upserts, revisions, reads."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from monitor.errors import StoreError
from monitor.model import Milestone, Observation, labels_of, month
from monitor.sources.config import CsvSource
from monitor.sources.csv import parse_csv
from monitor.store import Store
from tests.sources.sourcekit import LONDON_2008, NOW

MET = labels_of({"force": "Met"})


def obs(indicator: str, period: str, value: float, *, labels: tuple[tuple[str, str], ...] = MET,
        denominator: float | None = None, provisional: bool = False) -> Observation:
    return Observation(indicator, labels, month(period), value, denominator, provisional)


def london() -> list[Observation]:
    config = CsvSource.model_validate({
        "name": "london", "kind": "csv", "path": "x", "layout": "wide",
        "indicator": "recorded_crime",
        "labels": {"borough": "Borough", "major": "Major Category", "minor": "Minor Category"}})
    return parse_csv(config, LONDON_2008.read_bytes(), origin="london.csv").observations


def test_it_stores_the_london_file_once_and_keeps_one_revision_for_one_edited_cell(
        store: Store) -> None:
    observations = london()
    repo = store.observations
    first = repo.ingest("london", observations, now=NOW)
    assert (first.inserted, first.series_created, first.unchanged) == (1056 * 108, 1056, 0)
    again = repo.ingest("london", observations, now=NOW + timedelta(hours=1))
    assert (again.inserted, again.unchanged, again.revised, again.updated) == (0, 1056 * 108,
                                                                               0, 0)
    edited = list(observations)
    old = edited[500]
    edited[500] = Observation(old.indicator, old.labels, old.period, old.value + 3)
    later = NOW + timedelta(hours=2)
    third = repo.ingest("london", edited, now=later)
    assert (third.inserted, third.revised, third.unchanged) == (0, 1, 1056 * 108 - 1)
    assert repo.count("recorded_crime") == 1056 * 108
    [revision] = repo.revisions()
    assert (revision.labels, revision.period) == (dict(old.labels), old.period)
    assert (revision.old_value, revision.new_value) == (old.value, old.value + 3)
    assert (revision.old_as_of, revision.revised_at) == (NOW, later)
    history = {p.period: p for p in repo.history("recorded_crime", old.labels)}
    assert history[old.period].value == old.value + 3
    assert history[old.period].revisions == 1
    assert history[old.period - 1].revisions == 0


def test_it_counts_a_provisional_flag_change_as_an_update_not_a_revision(store: Store) -> None:
    repo = store.observations
    repo.ingest("s", [obs("ksi", "2008-04", 70, provisional=True)], now=NOW)
    result = repo.ingest("s", [obs("ksi", "2008-04", 70)], now=NOW)
    assert (result.updated, result.revised) == (1, 0)
    assert repo.revisions() == []
    [point] = repo.history("ksi", MET)
    assert (point.provisional, point.revisions) == (False, 0)


def test_it_counts_a_changed_denominator_as_a_revision(store: Store) -> None:
    repo = store.observations
    repo.ingest("s", [obs("confidence", "2008-04", 44, denominator=90)], now=NOW)
    result = repo.ingest("s", [obs("confidence", "2008-04", 44, denominator=91)], now=NOW)
    assert result.revised == 1
    [revision] = repo.revisions()
    assert (revision.old_denominator, revision.new_denominator) == (90.0, 91.0)


def test_it_refuses_non_finite_values_and_keeps_the_last_of_repeated_periods(
        store: Store) -> None:
    result = store.observations.ingest("s", [
        obs("x", "2008-04", math.nan), obs("x", "2008-05", 1), obs("x", "2008-05", 2)], now=NOW)
    assert (result.rejected, result.duplicates, result.inserted) == (1, 1, 1)
    assert [p.value for p in store.observations.history("x", MET)] == [2.0]


def test_it_lands_a_whole_ingest_or_nothing(store: Store) -> None:
    repo = store.observations
    repo.ingest("s", [obs("robbery", "2008-04", 5)], now=NOW)
    with store.engine.begin() as conn:
        if store.is_sqlite:
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON observation "
                              "WHEN NEW.value = 666 BEGIN SELECT RAISE(ABORT, 'refused'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                              "IF NEW.value = 666 THEN RAISE EXCEPTION 'refused'; END IF; "
                              "RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON observation FOR EACH ROW "
                              "EXECUTE FUNCTION refuse()"))
    batch = [obs("robbery", "2008-04", 6), obs("robbery", "2008-05", 7),
             obs("burglary", "2008-05", 666)]
    with pytest.raises(StoreError, match=r"^cannot store the observations of source 's': "
                                         r".*refused.*; nothing was written$"):
        repo.ingest("s", batch, now=NOW)
    assert [p.value for p in repo.history("robbery", MET)] == [5.0]
    assert repo.revisions() == []
    assert repo.count() == 1
    assert "burglary" not in repo.read()


def test_it_reads_columnar_blocks_per_indicator(store: Store) -> None:
    repo = store.observations
    camden = labels_of({"borough": "Camden"})
    hackney = labels_of({"borough": "Hackney"})
    repo.ingest("s", [
        obs("robbery", "2008-04", 10, labels=camden), obs("robbery", "2008-05", 11, labels=camden),
        obs("robbery", "2008-05", 20, labels=hackney, provisional=True),
        obs("confidence", "2008-05", 44, denominator=90),
    ], now=NOW)
    blocks = repo.read()
    robbery = blocks["robbery"]
    assert robbery.labels == [{"borough": "Camden"}, {"borough": "Hackney"}]
    assert robbery.row.tolist() == [0, 0, 1]
    assert robbery.period.tolist() == [month("2008-04"), month("2008-05"), month("2008-05")]
    assert robbery.value.tolist() == [10.0, 11.0, 20.0]
    assert robbery.provisional.tolist() == [False, False, True]
    assert np.isnan(robbery.denominator).all()
    assert blocks["confidence"].denominator.tolist() == [90.0]
    recent = repo.read(["robbery"], since=month("2008-05"))
    assert list(recent) == ["robbery"]
    assert recent["robbery"].value.tolist() == [11.0, 20.0]
    assert recent["robbery"].series_ids == robbery.series_ids
    assert repo.read(["nothing"]) == {}
    assert repo.read([]) == {}


def test_it_lists_revisions_since_a_time(store: Store) -> None:
    repo = store.observations
    repo.ingest("s", [obs("x", "2008-04", 1), obs("x", "2008-05", 1)], now=NOW)
    repo.ingest("s", [obs("x", "2008-04", 2)], now=NOW + timedelta(days=1))
    repo.ingest("s", [obs("x", "2008-05", 3)], now=NOW + timedelta(days=2))
    recent = repo.revisions(since=NOW + timedelta(days=2))
    assert [(r.period, r.old_value, r.new_value) for r in recent] == [(month("2008-05"), 1, 3)]
    assert [r.period for r in repo.revisions()] == [month("2008-05"), month("2008-04")]
    assert repo.revision_count("s") == 2
    assert repo.indicators_by_source() == {"s": ["x"]}


def test_it_lists_the_label_names_of_the_stored_series(store: Store) -> None:
    """What ``monitor silence add`` knows of the series (the daemon knows it from its
    snapshot): every name, once, read by the database on both backends."""
    repo = store.observations
    assert repo.label_names() == set()
    repo.ingest("s", [obs("x", "2008-04", 1),
                      obs("y", "2008-04", 1, labels=labels_of({"force": "Met", "bcu": "N"})),
                      obs("y", "2008-04", 1, labels=labels_of({"area": "S"}))], now=NOW)
    assert repo.label_names() == {"force", "bcu", "area"}


def test_it_makes_the_stored_plan_equal_the_file(store: Store) -> None:
    repo = store.observations
    plan = [Milestone("CT-01", "Protocol", "SO15", date(2008, 4, 30), "done",
                      date(2008, 4, 24)),
            Milestone("CT-02", "Griffin", "TP", date(2008, 5, 31), "in_progress")]
    first = repo.upsert_milestones("ct", plan, now=NOW)
    assert (first.inserted, first.updated, first.removed) == (2, 0, 0)
    done = Milestone("CT-02", "Griffin", "TP", date(2008, 5, 31), "done", date(2008, 6, 20))
    second = repo.upsert_milestones("ct", [done], now=NOW, remove_missing=False)
    assert (second.updated, second.removed, second.unchanged) == (1, 0, 0)
    assert [m.id for m in repo.milestones("ct")] == ["CT-01", "CT-02"]
    third = repo.upsert_milestones("ct", [done], now=NOW)
    assert (third.unchanged, third.removed) == (1, 1)
    assert repo.milestones() == [done]
