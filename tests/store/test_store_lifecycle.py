"""The store opens, migrates idempotently, keeps data across restarts, and guards SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from monitor.errors import StoreError, StoreLockedError
from monitor.store import Store, db, open_store
from monitor.store.db import head_revision


def test_it_migrates_an_empty_store_to_the_newest_revision(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert store.revision() == head_revision()
        assert store.ping()
    finally:
        store.close()


def test_it_treats_a_second_upgrade_as_a_no_op(store_url: str) -> None:
    store = open_store(store_url)
    try:
        before, after = store.upgrade()
        assert before == after == head_revision()
    finally:
        store.close()


def test_it_keeps_data_written_before_a_restart(store_url: str) -> None:
    store = open_store(store_url)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO monitor_meta (key, value) VALUES ('probe', 'kept')"))
    store.close()
    reopened = open_store(store_url)
    try:
        with reopened.engine.connect() as conn:
            value = conn.execute(text("SELECT value FROM monitor_meta WHERE key='probe'"))
            assert value.scalar_one() == "kept"
    finally:
        reopened.close()


def test_it_fills_the_sources_feeding_each_indicator_when_migrating(store_url: str) -> None:
    store = Store(store_url)
    try:
        command.upgrade(db._alembic_config(store.engine), "0002")
        with store.engine.begin() as conn:
            conn.execute(text("INSERT INTO indicator (id, name, reference, unit, direction, "
                              "frequency, definition) VALUES ('x', 'x', '', '', 'neutral', "
                              "'monthly', '{}'), ('y', 'y', '', '', 'neutral', 'monthly', '{}')"))
            conn.execute(text("INSERT INTO series (id, indicator_id, fingerprint, labels, "
                              "source) VALUES (1, 'x', 'a', '{}', 'one'), "
                              "(2, 'y', 'b', '{}', 'two')"))
            conn.execute(text("INSERT INTO observation (series_id, period, value, provisional, "
                              "as_of, revisions, source) VALUES "
                              "(1, 1, 1.0, false, '2008-01-01', 0, 'one'), "
                              "(1, 2, 1.0, false, '2008-01-01', 0, 'two'), "
                              "(2, 1, 1.0, false, '2008-01-01', 0, 'two')"))
        store.upgrade()
        assert store.observations.indicators_by_source() == {"one": ["x"], "two": ["x", "y"]}
    finally:
        store.close()


def test_it_refuses_a_second_process_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    first = open_store(url)
    first.lock_single_process()
    second = Store(url)
    try:
        with pytest.raises(StoreLockedError, match=r"already used by PID .* move to PostgreSQL"):
            second.lock_single_process()
    finally:
        second.close()
        first.close()


def test_it_enables_wal_and_foreign_keys_on_sqlite(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pragmas.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 5000
    finally:
        store.close()


def test_it_says_which_url_is_wrong() -> None:
    with pytest.raises(StoreError, match="is not a database URL"):
        Store("not a url at all")
