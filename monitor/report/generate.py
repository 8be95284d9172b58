"""Evaluating a month for the pack: the month and the one before, through the one path
``monitor eval --at`` takes (:func:`monitor.rules.cycle.publish_month`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.model import Frequency
from monitor.report import html, pdf, xlsx
from monitor.report.pack import Pack, build_pack
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
    _, now = publish_month(evaluator, dataset, period, sources)
    _, before = publish_month(evaluator, dataset, period - 1, sources)
    month = Frequency.MONTHLY
    return build_pack(title=title, organisation=organisation, period=month.label(period),
                      previous_period=month.label(period - 1),
                      data_to=now.snapshot.data_to(), generated_at=generated_at,
                      rows=now.scorecard(), alerts=now.snapshot.alerts,
                      previous_rows=before.scorecard())


def render(pack: Pack, fmt: str) -> bytes:
    """Return the pack as ``fmt`` (pdf, xlsx or html). Raises ValueError for another."""
    if fmt == "pdf":
        return pdf.render(pack)
    if fmt == "xlsx":
        return xlsx.render(pack)
    if fmt == "html":
        return html.render(pack).encode("utf-8")
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def file_name(name: str, period: str, fmt: str) -> str:
    """``monthly-2008-07.pdf``."""
    return f"{name}-{period}.{fmt}"


__all__: Sequence[str] = ["FORMATS", "MEDIA_TYPES", "file_name", "month_pack", "render"]
