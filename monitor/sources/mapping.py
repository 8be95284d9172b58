"""Turning rows into observations: the mapping every tabular source kind shares.

A :class:`Mapper` is compiled once per payload from the source's :class:`MappingOptions`
and a way to find each mapped field in a record (a CSV column index, a JSON path, a SQL
result column). For each record it returns observations, or a :class:`RowProblem` naming
the source, the row and the field. Problems are never raised: the row is rejected, the
poll goes on. Payload-level problems (a mapped column absent from the header) raise
:class:`PayloadError` before any row is read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from monitor.configtypes import Section
from monitor.errors import PayloadError
from monitor.model import Frequency, Labels, Observation, RowProblem
from monitor.sources.base import IndicatorId, LabelName, SourceBase
from monitor.store.batch import ObservationBatch


class MappingOptions(Section):
    """How rows (CSV lines, JSON records, SQL rows) become observations of indicators.

    ``*_column`` names are CSV header names, SQL result columns, or dotted field paths
    into JSON records (``attributes.period``; ``items.0.value`` indexes a list).
    """

    indicator: IndicatorId | None = None
    indicator_column: str | None = None
    indicators: dict[str, IndicatorId] = Field(default_factory=dict)
    unmapped: Literal["skip", "reject"] = "reject"
    labels: dict[LabelName, str] = Field(default_factory=dict)
    frequency: Frequency = Frequency.MONTHLY
    period_column: str = "period"
    period_format: str | None = None
    value_column: str = "value"
    denominator_column: str | None = None
    provisional_column: str | None = None
    allow_negative: bool = False
    null_values: list[str] = Field(default_factory=list)
    thousands_separator: str = ""
    # Rows giving the same series and period: "reject" all of them (the default: neither
    # can be trusted), or "sum" them (several categories mapped to one indicator).
    duplicates: Literal["reject", "sum"] = "reject"

    @field_validator("period_format")
    @classmethod
    def _strptime_format(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise ValueError(f"{value!r} is not a strptime format; write it like %Y%m, "
                             "%Y-%m or %d/%m/%Y")
        return value

    @model_validator(mode="after")
    def _one_indicator(self) -> MappingOptions:
        if (self.indicator is None) == (self.indicator_column is None):
            raise ValueError("give exactly one of indicator (a fixed id) or indicator_column "
                             "(a column whose values name the indicator)")
        if self.indicators and self.indicator_column is None:
            raise ValueError("indicators maps the values of indicator_column; set "
                             "indicator_column too")
        return self

Getter = Callable[[Any], Any]
"""Returns one field of a record; raises LookupError when the record lacks it."""

_INDICATOR = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_TRUE = frozenset({"true", "t", "yes", "y", "1", "provisional", "p"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "final", ""})


class Skip(Exception):  # a signal, not an error
    """The record is left out on purpose (unmapped indicator with ``unmapped = "skip"``)."""


class Reject(Exception):  # a signal, not an error
    """The record is rejected; carries the problem's field, reason code and message."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason
        self.message = message


@dataclass
class Collector:
    """Accumulates observations and problems; rejects repeated (series, period) keys.

    When two rows give the same series and period, neither can be trusted: both are
    rejected with ``duplicate_period``, each naming the other row — unless ``add_up``
    (``duplicates = "sum"``): then they are one observation, values and denominators
    added, provisional if any part is.
    """

    source: str
    by_series: bool = False  # True: a row carries a whole series (wide tables)
    add_up: bool = False
    observations: list[Observation] = field(default_factory=list)
    rows_of: list[int | str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0
    skipped: int = 0
    _first: dict[Any, int] = field(default_factory=dict)
    _spans: list[tuple[int, int]] = field(default_factory=list)
    _dupes: dict[int, list[int | str]] = field(default_factory=dict)

    def problem(self, row: int | str, field_name: str, reason: str, message: str) -> None:
        self.problems.append(RowProblem(self.source, row, field_name, reason, message))

    def add(self, row: int | str, observations: Sequence[Observation]) -> None:
        """Add the observations of one row (a wide row: one series, many periods)."""
        if not observations:
            return
        start = len(self.observations)
        self.observations.extend(observations)
        self.rows_of.append(row)
        span = len(self._spans)
        self._spans.append((start, len(self.observations)))
        if self.by_series:
            first = observations[0]
            keys: Iterable[Any] = ((first.indicator, first.labels),)
        else:
            keys = ((o.indicator, o.labels, o.period) for o in observations)
        for key in keys:
            other = self._first.setdefault(key, span)
            if other != span:
                self._dupes.setdefault(other, []).append(row)
                self._dupes.setdefault(span, []).append(self.rows_of[other])

    def result(self) -> tuple[list[Observation], list[RowProblem]]:
        """Return the accepted observations and every problem, duplicates included."""
        if not self._dupes:
            return self.observations, self.problems
        if self.add_up:
            return _summed(self.observations), self.problems
        kept: list[Observation] = []
        for span, (start, end) in enumerate(self._spans):
            others = self._dupes.get(span)
            if others is None:
                kept.extend(self.observations[start:end])
                continue
            first = self.observations[start]
            what = dict(first.labels) | {"indicator": first.indicator}
            if not self.by_series:
                what["period"] = str(first.period)
            listed = ", ".join(str(r) for r in others)
            self.problem(self.rows_of[span], "period", "duplicate_period",
                         f"the same series and period as row {listed} ({_describe(what)}); "
                         "all of them are rejected")
        return kept, self.problems


def _summed(observations: Sequence[Observation]) -> list[Observation]:
    """Merge observations of one series and period, adding values and denominators."""
    merged: dict[tuple[Any, ...], Observation] = {}
    for o in observations:
        key = (o.indicator, o.labels, o.period)
        seen = merged.get(key)
        if seen is None:
            merged[key] = o
            continue
        denominator = None if seen.denominator is None and o.denominator is None else \
            (seen.denominator or 0.0) + (o.denominator or 0.0)
        merged[key] = Observation(o.indicator, o.labels, o.period, seen.value + o.value,
                                  denominator, seen.provisional or o.provisional)
    return list(merged.values())


def _describe(mapping: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(mapping.items()))


class Mapper:
    """Compiled mapping of one source: record -> observation, or a rejection."""

    def __init__(self, config: MappingOptions, source: str, static_labels: dict[str, str],
                 locate: Callable[[str], Getter], *, need_period: bool = True) -> None:
        self.config = config
        self.source = source
        self.frequency: Frequency = config.frequency
        self.static = tuple(static_labels.items())
        self._label_names = list(config.labels)
        self._label_getters = [locate(column) for column in config.labels.values()]
        self._label_columns = list(config.labels.values())
        self._indicator_getter = locate(config.indicator_column) \
            if config.indicator_column else None
        self._value = locate(config.value_column) if need_period else None
        self._period = locate(config.period_column) if need_period else None
        self._den = locate(config.denominator_column) if config.denominator_column else None
        self._flag = locate(config.provisional_column) if config.provisional_column else None
        self._nulls = frozenset(v.strip() for v in config.null_values)
        self._periods: dict[Any, int] = {}
        self._labels: dict[tuple[Any, ...], Labels] = {}
        self._indicators: dict[Any, str] = {}

    # --- the parts of a record -----------------------------------------------------

    def indicator(self, record: Any) -> str:
        """Return the record's indicator id. Raises Skip or Reject."""
        if self._indicator_getter is None:
            assert self.config.indicator is not None
            return self.config.indicator
        column = self.config.indicator_column or ""
        raw = self._get(self._indicator_getter, record, column)
        if isinstance(raw, dict | list):
            raise Reject(column, "bad_indicator", f"a {type(raw).__name__} is not an indicator id")
        found = self._indicators.get(raw) if isinstance(raw, str | int) else None
        if found is not None:
            return found
        text = "" if raw is None else str(raw).strip()
        if self.config.indicators:
            mapped = self.config.indicators.get(text)
            if mapped is None:
                if self.config.unmapped == "skip":
                    raise Skip
                known = ", ".join(repr(k) for k in list(self.config.indicators)[:5])
                raise Reject(column, "unmapped",
                             f"{text!r} is not in indicators (known: {known}…); add it to "
                             "the indicators table or set unmapped = \"skip\"")
            found = mapped
        elif _INDICATOR.match(text):
            found = text
        else:
            raise Reject(column, "bad_indicator",
                         f"{text!r} is not an indicator id (letters, digits, _ . : -)")
        if isinstance(raw, str | int):
            self._indicators[raw] = found
        return found

    def labels(self, record: Any) -> Labels:
        """Return the record's label set (one shared tuple per distinct set). Raises Reject."""
        raw = tuple(self._get(g, record, c) for g, c in zip(self._label_getters,
                                                             self._label_columns, strict=True))
        for value, column in zip(raw, self._label_columns, strict=True):
            if isinstance(value, dict | list):
                raise Reject(column, "missing_label",
                             f"a {type(value).__name__} is not a label value; map the label to "
                             "a field inside it")
        try:
            found = self._labels.get(raw)
            cacheable = True
        except TypeError:  # an unhashable value, such as a signalling-NaN Decimal from SQL
            found, cacheable = None, False
        if found is not None:
            return found
        pairs = list(self.static)
        for name, column, value in zip(self._label_names, self._label_columns, raw,
                                       strict=True):
            text = "" if value is None else str(value).strip()
            if not text:
                raise Reject(column, "missing_label", f"empty value for label {name!r}")
            pairs.append((name, text))
        found = tuple(sorted(pairs))
        if cacheable:
            self._labels[raw] = found
        return found

    def period(self, raw: Any, column: str) -> int:
        """Return the period ordinal of ``raw``. Raises Reject (``bad_period``)."""
        try:
            return self._periods[raw]
        except (KeyError, TypeError):
            pass
        ordinal = self._parse_period(raw, column)
        if isinstance(raw, str | int):
            self._periods[raw] = ordinal
        return ordinal

    def _parse_period(self, raw: Any, column: str) -> int:
        fmt = self.config.period_format
        try:
            if isinstance(raw, datetime):
                return self.frequency.ordinal(raw.date())
            if isinstance(raw, date):
                return self.frequency.ordinal(raw)
            if raw is None or isinstance(raw, bool | float):
                raise ValueError(f"{raw!r} is not a period")
            text = str(raw).strip()
            if fmt is not None:
                return self.frequency.ordinal(datetime.strptime(text, fmt).date())
            return self.frequency.parse(text)
        except ValueError as exc:
            hint = f"expected the format {fmt}" if fmt else str(exc)
            raise Reject(column, "bad_period", f"{raw!r} is not a period: {hint}") from None

    def number(self, raw: Any, column: str, *, allow_negative: bool) -> float | None:
        """Return ``raw`` as a finite number; None for a configured null marker.

        Raises Reject (``missing_value``, ``non_numeric``, ``negative``).
        """
        if isinstance(raw, bool):
            raise Reject(column, "non_numeric", f"{raw!r} is a boolean, not a number")
        if isinstance(raw, int | float):
            value = float(raw)
        else:
            text = "" if raw is None else str(raw).strip()
            if text in self._nulls:
                return None
            if not text:
                raise Reject(column, "missing_value",
                             "empty value; add \"\" to null_values if empty means no data")
            if self.config.thousands_separator:
                text = text.replace(self.config.thousands_separator, "")
            try:
                value = float(text)
            except ValueError:
                raise Reject(column, "non_numeric", f"{_clip(text)!r} is not a number") from None
        if not math.isfinite(value):
            raise Reject(column, "non_numeric", f"{value!r} is not a finite number")
        if value < 0 and not allow_negative:
            raise Reject(column, "negative",
                         f"{value:g} is negative; counts cannot be (set allow_negative = true "
                         "for values that can)")
        return value

    def flag(self, raw: Any, column: str) -> bool:
        """Return the provisional flag. Raises Reject (``bad_flag``)."""
        if isinstance(raw, bool):
            return raw
        text = "" if raw is None else str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise Reject(column, "bad_flag", f"{_clip(text)!r} is not true or false")

    # --- one long record ---------------------------------------------------------------

    def record(self, record: Any) -> Observation | None:
        """Return the observation of a long record; None for a null value.

        Raises Skip or Reject.
        """
        assert self._value is not None and self._period is not None
        cfg = self.config
        indicator = self.indicator(record)
        labels = self.labels(record)
        period = self.period(self._get(self._period, record, cfg.period_column),
                             cfg.period_column)
        value = self.number(self._get(self._value, record, cfg.value_column), cfg.value_column,
                            allow_negative=cfg.allow_negative)
        if value is None:
            return None
        den = None
        if self._den is not None:
            column = cfg.denominator_column or ""
            raw = self._optional(self._den, record)
            den = None if raw is None or str(raw).strip() == "" else \
                self.number(raw, column, allow_negative=cfg.allow_negative)
            if den == 0:
                raise Reject(column, "zero_denominator", "the denominator is 0")
        flag = False
        if self._flag is not None:
            column = cfg.provisional_column or ""
            flag = self.flag(self._optional(self._flag, record), column)
        return Observation(indicator, labels, period, value, den, flag)

    @staticmethod
    def _optional(getter: Getter, record: Any) -> Any:
        """An optional field (denominator, flag) a JSON record may leave out: None then."""
        try:
            return getter(record)
        except (LookupError, TypeError):
            return None

    @staticmethod
    def _get(getter: Getter, record: Any, column: str) -> Any:
        try:
            return getter(record)
        except (LookupError, TypeError):
            raise Reject(column, "missing_column", f"the row has no field {column!r}") from None

    def convert(self, collector: Collector, row: int | str, record: Any) -> None:
        """Add the record's observation to ``collector``, or its problem, or count a skip."""
        collector.rows += 1
        try:
            obs = self.record(record)
        except Skip:
            collector.skipped += 1
            return
        except Reject as rejected:
            collector.problem(row, rejected.field, rejected.reason, rejected.message)
            return
        if obs is None:
            collector.skipped += 1
        else:
            collector.add(row, (obs,))


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[:width] + "…"


def missing_columns(config: MappingOptions, *, need_period: bool = True) -> list[tuple[str, str]]:
    """Return (column, mapped-by key) for every column the mapping reads."""
    out: list[tuple[str, str]] = []
    if config.indicator_column:
        out.append((config.indicator_column, "indicator_column"))
    out += [(column, f"labels.{name}") for name, column in config.labels.items()]
    if need_period:
        out += [(config.period_column, "period_column"), (config.value_column, "value_column")]
    if config.denominator_column:
        out.append((config.denominator_column, "denominator_column"))
    if config.provisional_column:
        out.append((config.provisional_column, "provisional_column"))
    return out


def check_header(source: str, where: str, header: Sequence[str],
                 wanted: Sequence[tuple[str, str]]) -> None:
    """Raise PayloadError (schema drift) naming every mapped column the header lacks."""
    present = set(header)
    gone = [(column, key) for column, key in wanted if column not in present]
    if not gone:
        return
    listed = "; ".join(f"column {column!r} ({key}) is missing" for column, key in gone)
    shown = ", ".join(repr(h) for h in header[:12]) + (", …" if len(header) > 12 else "")
    raise PayloadError(f"source {source!r} {where}: schema drift: {listed}; the header has "
                       f"{shown}. If the publisher renamed a column, update the mapping; the "
                       "previous data is kept")


def mark_provisional(config: SourceBase, batch: ObservationBatch) -> ObservationBatch:
    """Return ``batch`` with the last ``provisional_last`` periods marked provisional.

    "Last" counts back from the latest period in the payload.
    """
    last = config.provisional_last
    if not last or not len(batch):
        return batch
    cutoff = int(batch.period.max()) - last
    return batch.with_provisional(batch.provisional | (batch.period > cutoff))


def is_html(body: bytes, content_type: str) -> bool:
    """Return True when a body is an HTML page (an error page where data was expected)."""
    if "html" in content_type.lower():
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or \
        (head.startswith(b"<") and b"<html" in head)


def html_error(source: str, origin: str, body: bytes, expected: str) -> PayloadError:
    """Return the PayloadError for an HTML page where ``expected`` data should be."""
    title = re.search(rb"<title[^>]*>(.*?)</title>", body[:4096], re.IGNORECASE | re.DOTALL)
    shown = title.group(1).decode("utf-8", "replace").strip() if title else \
        body[:80].decode("utf-8", "replace").strip()
    return PayloadError(f"source {source!r}: {origin} returned an HTML page ({_clip(shown, 80)!r})"
                        f" where {expected} was expected; the server is probably failing or "
                        "the URL points at a web page, not the data; the previous data is kept")


def decode(source: str, origin: str, body: bytes, encoding: str) -> str:
    """Return ``body`` as text. Raises PayloadError naming the byte offset and the fix."""
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise PayloadError(f"source {source!r}: {origin} is not {encoding} text (byte "
                           f"{exc.start}); set encoding = \"…\" to the file's encoding, e.g. "
                           "\"cp1252\"") from None
    except LookupError:
        raise PayloadError(f"source {source!r}: unknown encoding {encoding!r}") from None

