"""One pack, every format: ``render`` — what ``monitor report`` and the scheduled packs
call — writes the HTML once (the html format and the PDF's source) and the workbook in a
worker process while the PDF is laid out; the exceptions compare with the previous
month's published statuses (its snapshot frames, not a second scorecard)."""

from __future__ import annotations

import gc
import io
import subprocess
import warnings
from pathlib import Path

import pytest
from openpyxl import load_workbook

from monitor.memory import gc_paused
from monitor.model import Frequency
from monitor.report.generate import milestone_sources, month_pack, render
from monitor.report.pack import Before, Pack, key_of, previous_of
from monitor.rules.cycle import Evaluator, SourceView, publish_month
from monitor.rules.inputs import read_dataset
from monitor.rules.loader import load_rules
from monitor.settings import ReportSettings, load
from monitor.store import open_store
from tests.report.conftest import GENERATED, Packs


@pytest.fixture(scope="module")
def july(packs: Packs) -> Pack:
    """The pack of July 2008, as ``monitor report`` builds it (first [[reports]] entry)."""
    settings = load(packs.config, environ={})
    store = open_store(settings.store.url.get_secret_value())
    report = settings.reports[0] if settings.reports else ReportSettings()
    try:
        return month_pack(settings, store, load_rules(settings.rules.paths),
                          Frequency.MONTHLY.parse("2008-07"), generated_at=GENERATED,
                          title=report.title, organisation=report.organisation)
    finally:
        store.close()


def _cells(data: bytes) -> dict[str, list[tuple[object, ...]]]:
    # openpyxl cannot keep XlsxWriter's sparklines (x14 extension) and says so; the cells
    # compared here are what it reads.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparkline Group extension", UserWarning)
        book = load_workbook(io.BytesIO(data))
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in book}


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout


def test_it_writes_every_format_from_one_pack_as_each_format_alone_would(
        july: Pack, packs: Packs, tmp_path: Path) -> None:
    files = render(july, ["pdf", "xlsx", "html"])
    assert list(files) == ["pdf", "xlsx", "html"]
    # The html is the document `--format html` writes; the PDF says what the CLI's says;
    # the workbook written in the worker process holds every cell the CLI's holds.
    assert files["html"] == packs.html.read_bytes()
    (tmp_path / "all.pdf").write_bytes(files["pdf"])
    assert _text(tmp_path / "all.pdf") == packs.pdf_text()
    assert _cells(files["xlsx"]) == _cells(packs.xlsx.read_bytes())


def test_the_garbage_collector_is_paused_while_a_pack_is_made_and_restored_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block found it paused and leaves it so
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("a format failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # paused by someone else before: left to them
    finally:
        gc.enable()


def test_an_unknown_format_is_refused_before_anything_is_rendered(july: Pack) -> None:
    with pytest.raises(ValueError, match="unknown format 'docx'; choose one of pdf, xlsx, html"):
        render(july, ["pdf", "docx"])


@pytest.mark.parametrize("month", ["2008-06", "2008-07"])
def test_the_previous_month_s_statuses_are_what_its_scorecard_rows_publish(
        packs: Packs, month: str) -> None:
    settings = load(packs.config, environ={})
    store = open_store(settings.store.url.get_secret_value())
    try:
        ruleset = load_rules(settings.rules.paths)
        milestones = milestone_sources(settings)
        dataset = read_dataset(store, ruleset, milestones)
        sources = SourceView(list(settings.sources), store.source_state.health())
    finally:
        store.close()
    evaluator = Evaluator(ruleset, history=settings.rules.history,
                          milestone_sources=milestones)
    _, published = publish_month(evaluator, dataset, Frequency.MONTHLY.parse(month), sources)
    rows = published.scorecard()
    before = previous_of(published.snapshot.frames)
    assert len(rows) == 16
    assert {key_of(r): before[key_of(r)] for r in rows} == {
        key_of(r): Before(r.status, r.spc_icon) for r in rows}
    assert any(r.spc_icon != "common_cause" for r in rows)  # not all alike
