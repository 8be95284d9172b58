"""Evaluating a month for the pack — the month and the one before, through the one path
``monitor eval --at`` takes (:func:`monitor.rules.cycle.publish_month`) — and writing the
one pack in every format asked for (:func:`render`): ``monitor report``, the scheduled
packs and the benchmark all go through these two functions.

Both run with Python's cyclic garbage collector paused (:func:`gc_paused`): they make
millions of objects that live until the pack is written (160,000 points, WeasyPrint's
boxes, XlsxWriter's cells), and each full collection walks them all again for garbage
that reference counting already frees — a quarter of the CPU time of a 3,300-row pack.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime

from monitor.memory import gc_paused
from monitor.model import Frequency
from monitor.report import html, pdf, xlsx
from monitor.report.pack import Pack, build_pack, previous_of
from monitor.rules.cycle import Evaluator, SourceView, publish_month
from monitor.rules.inputs import read_dataset
from monitor.rules.loader import RuleSet
from monitor.settings import Settings
from monitor.store import Store

FORMATS = ("pdf", "xlsx", "html")
MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def milestone_sources(settings: Settings) -> list[str]:
    return [s.name for s in settings.sources if getattr(s, "kind", "") == "milestones"]


def month_pack(settings: Settings, store: Store, ruleset: RuleSet, period: int, *,
               generated_at: datetime, title: str, organisation: str) -> Pack:
    """Return the pack of the month ``period`` (a monthly ordinal): the month evaluated as
    ``monitor eval --at`` evaluates it, against the previous month evaluated the same way.

    Reads the store; never writes it.
    """
    milestones = milestone_sources(settings)
    dataset = read_dataset(store, ruleset, milestones)
    sources = SourceView(list(settings.sources), store.source_state.health())
    evaluator = Evaluator(ruleset, history=settings.rules.history,
                          milestone_sources=milestones)
    with gc_paused():
        _, now = publish_month(evaluator, dataset, period, sources)
        _, before = publish_month(evaluator, dataset, period - 1, sources)
        month = Frequency.MONTHLY
        # The previous month is read from its snapshot frames (status and SPC variation
        # per series), not from its scorecard rows: the pack compares nothing else.
        return build_pack(title=title, organisation=organisation,
                          period=month.label(period), previous_period=month.label(period - 1),
                          data_to=now.snapshot.data_to(), generated_at=generated_at,
                          rows=now.scorecard(), alerts=now.snapshot.alerts,
                          previous=previous_of(before.snapshot.frames))


def render(pack: Pack, formats: Sequence[str]) -> dict[str, bytes]:
    """Return ``pack`` in each of ``formats`` (pdf, xlsx, html), by format.

    Nothing is made twice: the HTML document is rendered once and is both the html
    format and the PDF's source. With both pdf and xlsx asked for, the workbook is
    written in a worker process (the pack pickled to it) while this one lays out the
    PDF, the longest step: on two cores the pack takes as long as the PDF alone. Raises
    ValueError for an unknown format before anything is rendered.
    """
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; choose one of {', '.join(FORMATS)}")
    out: dict[str, bytes] = {}
    pool: ProcessPoolExecutor | None = None
    book: Future[bytes] | None = None
    if "xlsx" in formats and "pdf" in formats:
        # spawn, not fork: the daemon renders from a scheduler thread, and a forked child
        # of a threaded process can inherit a lock another thread held.
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        book = pool.submit(workbook, pack)
    try:
        with gc_paused():
            if "html" in formats or "pdf" in formats:
                document = html.render(pack)
                if "html" in formats:
                    out["html"] = document.encode("utf-8")
                if "pdf" in formats:
                    out["pdf"] = pdf.render(document)
            if "xlsx" in formats and book is None:
                out["xlsx"] = xlsx.render(pack)
        if book is not None:
            out["xlsx"] = book.result()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return {fmt: out[fmt] for fmt in formats}


def workbook(pack: Pack) -> bytes:
    """Return the workbook of ``pack`` (:func:`monitor.report.xlsx.render`) with the
    cyclic garbage collector paused: what the worker process runs."""
    with gc_paused():
        return xlsx.render(pack)


def file_name(name: str, period: str, fmt: str) -> str:
    """``monthly-2008-07.pdf``."""
    return f"{name}-{period}.{fmt}"


__all__: Sequence[str] = ["FORMATS", "MEDIA_TYPES", "file_name", "month_pack",
                          "render", "workbook"]
