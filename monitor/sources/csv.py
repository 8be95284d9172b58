"""CSV tables over HTTP(S) or from a file: *long* (one row per period) or *wide*.

A wide table has one column per period, like the London Datastore's borough crime files
(``Borough, Major Category, Minor Category, 200801 … 201612``): the label columns come
from ``labels``, the period columns are the header names matching ``period_columns``.
In a wide table each cell is one observation, so a bad cell rejects that cell alone.

Row references in problems are line numbers in the file (the header is line 1).
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys
from collections.abc import Iterator
from operator import itemgetter
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from monitor.errors import PayloadError
from monitor.memory import gc_paused
from monitor.model import Labels, Observation
from monitor.sources.base import FileOrUrl, Parsed, Payload, Source, SourceBase
from monitor.sources.http import HttpOptions
from monitor.sources.mapping import (
    Collector,
    Getter,
    Mapper,
    MappingOptions,
    Reject,
    Skip,
    check_header,
    decode,
    html_error,
    is_html,
    missing_columns,
)
from monitor.store.batch import ObservationBatch
from monitor.store.sourcestate import Validators


class CsvSource(SourceBase, FileOrUrl, HttpOptions, MappingOptions):
    """A CSV table: *long* (one row per period) or *wide* (one column per period)."""

    kind: Literal["csv"]
    layout: Literal["long", "wide"] = "long"
    period_columns: str = r"^\d{6}$"
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"
    header_row: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _wide_has_no_denominator(self) -> CsvSource:
        if self.layout == "wide" and self.denominator_column:
            raise ValueError("a wide table has one value per cell; denominator_column works "
                             "with layout = \"long\" only")
        return self

    @field_validator("period_columns")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"period_columns {value!r} is not a regular expression: {exc}"
                             ) from None
        return value

ACCEPT = "text/csv, text/plain;q=0.9, */*;q=0.1"


class CsvKind(Source[CsvSource]):
    """``kind = "csv"``."""

    kind = "csv"
    config_type = CsvSource

    def fetch(self, previous: Validators) -> Payload:
        return self.fetch_file_or_url(previous, ACCEPT)

    def parse(self, payload: Payload) -> Parsed:
        return parse_csv(self.config, payload.body, origin=payload.origin,
                         content_type=payload.content_type)


def _records(reader: Any, source: str, origin: str) -> Iterator[tuple[list[str], int]]:
    """Yield (record, line number) pairs; raise PayloadError for malformed CSV."""
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise PayloadError(f"source {source!r}: {origin} line {reader.line_num}: not valid "
                               f"CSV ({exc}); the body may be truncated or not CSV at all"
                               ) from None
        yield record, reader.line_num


@gc_paused()
def parse_csv(config: CsvSource, body: bytes, *, origin: str, content_type: str = "",
              columnar: bool = True) -> Parsed:
    """Return the observations in a CSV body and the rows rejected.

    A wide table is read into columns when it has nothing to report (see
    :func:`_wide_columns`); ``columnar=False`` reads it row by row even then, so tests
    and benchmarks can compare the two readers.

    Raises PayloadError when the body is HTML, not text in ``encoding``, malformed,
    truncated (the last line stops short with no line end) or when the header lacks a
    mapped column (schema drift).
    """
    source = config.name
    if is_html(body, content_type):
        raise html_error(source, origin, body, "CSV")
    truncated = not decode(source, origin, body, config.encoding).endswith(("\n", "\r"))
    # The reader decodes the (valid) body again as it reads: a StringIO of the whole text
    # holds four bytes a character, 53 MB for a 13 MB table whose header is all a wide
    # table read into columns takes from it.
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(body), encoding=config.encoding,
                                         newline=""),
                        delimiter=config.delimiter, strict=True)
    records = _records(reader, source, origin)
    header: list[str] | None = None
    for _ in range(config.header_row):
        header = next((r for r, _line in records), None)
    if not header:
        raise PayloadError(f"source {source!r}: {origin} is empty; expected a header on line "
                           f"{config.header_row}")
    header = [h.strip() for h in header]
    where = f"{origin} header (line {reader.line_num})"
    if config.layout == "wide":
        return _parse_wide(config, header, records, where, truncated, origin,
                           body if columnar else None)
    return _parse_long(config, header, records, where, truncated, origin)


def _index(source: str, where: str, header: list[str], wanted: list[tuple[str, str]]
           ) -> dict[str, int]:
    check_header(source, where, header, wanted)
    index: dict[str, int] = {}
    for position, name in enumerate(header):
        index.setdefault(name, position)
    for column, key in wanted:
        if header.count(column) > 1:
            raise PayloadError(f"source {source!r} {where}: column {column!r} ({key}) appears "
                               f"{header.count(column)} times; rename one in the file")
    return index


def _truncation(source: str, origin: str, line: int, have: int, want: int) -> PayloadError:
    return PayloadError(f"source {source!r}: {origin} line {line}: the body ends in the middle "
                        f"of a row ({have} of {want} fields, no line end): truncated; the "
                        "previous data is kept")


def _shape_problem(collector: Collector, line: int, header: list[str], have: int) -> None:
    want = len(header)
    if have < want:
        collector.problem(line, header[have], "missing_column",
                          f"the row has {have} fields, the header {want}: no value for "
                          f"{header[have]!r}")
    else:
        collector.problem(line, f"field {want + 1}", "extra_fields",
                          f"the row has {have} fields, the header {want}; a value probably "
                          "contains an unquoted delimiter")


def _parse_long(config: CsvSource, header: list[str], records: Iterator[tuple[list[str], int]],
                where: str, truncated: bool, origin: str) -> Parsed:
    source = config.name
    index = _index(source, where, header, missing_columns(config))

    def locate(column: str) -> Getter:
        return itemgetter(index[column])

    mapper = Mapper(config, source, config.static_labels, locate)
    collector = Collector(source, add_up=config.duplicates == "sum")
    width = len(header)
    pending: tuple[list[str], int] | None = None
    for item in records:
        if pending is not None:
            _long_row(mapper, collector, header, width, *pending)
        pending = item
    if pending is not None:
        record, line = pending
        if truncated and record and len(record) != width:
            raise _truncation(source, origin, line, len(record), width)
        _long_row(mapper, collector, header, width, record, line)
    observations, problems = collector.result()
    return Parsed(observations, problems, rows=collector.rows, skipped=collector.skipped)


def _long_row(mapper: Mapper, collector: Collector, header: list[str], width: int,
              record: list[str], line: int) -> None:
    if not record or (len(record) == 1 and not record[0].strip()):
        return
    if len(record) != width:
        collector.rows += 1
        _shape_problem(collector, line, header, len(record))
        return
    mapper.convert(collector, line, record)


def _period_columns(config: CsvSource, header: list[str], where: str,
                    mapper: Mapper) -> list[tuple[int, str, int]]:
    pattern = re.compile(config.period_columns)
    labelled = set(config.labels.values()) | {config.indicator_column}
    out: list[tuple[int, str, int]] = []
    seen: dict[int, str] = {}
    for position, name in enumerate(header):
        if name in labelled or not pattern.search(name):
            continue
        try:
            period = mapper.period(name, name)
        except Reject as rejected:
            raise PayloadError(f"source {config.name!r} {where}: column {name!r} matches "
                               f"period_columns but {rejected.message}; fix period_format or "
                               "period_columns") from None
        if period in seen:
            raise PayloadError(f"source {config.name!r} {where}: columns {seen[period]!r} and "
                               f"{name!r} are the same period")
        seen[period] = name
        out.append((position, name, period))
    if not out:
        shown = ", ".join(repr(h) for h in header[:8])
        raise PayloadError(f"source {config.name!r} {where}: schema drift: no column matches "
                           f"period_columns {config.period_columns!r} (the header has {shown}…)"
                           "; the previous data is kept")
    return out


_UTF8 = frozenset({"utf-8", "utf8", "utf-8-sig", "utf_8", "utf_8_sig"})


def _wide_columns(config: CsvSource, body: bytes, header: list[str], index: dict[str, int],
                  columns: list[tuple[int, str, int]]) -> Parsed | None:
    """Return a wide table parsed into columns by Arrow's CSV reader, or None when the
    payload has anything to report (then the row-by-row reader, which words every
    problem with its line, reads it again).

    1. read the label, indicator and flag columns as text and the period columns as
       float64, in C++, with no null markers: an empty or non-numeric cell, a row of
       the wrong width or malformed quoting makes the read fail -> None;
    2. check the values as arrays (finite; not negative unless allowed) -> None if not;
    3. map each row's indicator, labels and flag (once per row, cached per distinct
       value); a rejected row, or a series repeated without ``duplicates = "sum"`` -> None;
    4. spread the series and periods over the values: one batch, row order then column
       order, as the row-by-row reader emits them.
    """
    if config.encoding.lower() not in _UTF8:
        return None
    # Imported here, not at the top: Arrow costs most of a CPU second to import, which
    # every command and daemon without a wide CSV source would pay at start.
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    text_columns = list(dict.fromkeys(
        [c for c in (config.indicator_column,) if c] + list(config.labels.values())
        + [c for c in (config.provisional_column,) if c]))
    names = [f"c{k}" for k in range(len(header))]
    types: dict[str, Any] = {names[index[c]]: pa.string() for c in text_columns}
    types.update({names[position]: pa.float64() for position, _name, _p in columns})
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(body.removeprefix(b"\xef\xbb\xbf")),
            read_options=pa_csv.ReadOptions(skip_rows=config.header_row, column_names=names),
            parse_options=pa_csv.ParseOptions(delimiter=config.delimiter,
                                              newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, include_columns=list(types), null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False),
            # The C library's allocator, not Arrow's (mimalloc): mimalloc kept the pages
            # of each table read and grew by a table's size at the next poll.
            memory_pool=pa.system_memory_pool())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Not a clean table: the row-by-row reader reads it and words each problem
        # with its source and line.
        return None
    rows = table.num_rows
    if not rows:
        return None
    # One row-major matrix, filled column by column; each column's Arrow buffer goes as
    # soon as it is copied, and the table with the last (the text columns come first).
    texts = [table.column(names[index[c]]).to_pylist() for c in text_columns]
    values = np.empty((rows, len(columns)), dtype=np.float64)
    for k, (position, _name, _p) in enumerate(columns):
        values[:, k] = table.column(names[position]).to_numpy()
        table = table.drop_columns([names[position]])
    del table
    low = -np.inf if config.allow_negative else 0.0
    if not ((values >= low) & (values < np.inf)).all():
        return None
    at = {c: k for k, c in enumerate(text_columns)}
    mapper = Mapper(config, config.name, config.static_labels,
                    lambda column: itemgetter(at[column]), need_period=False)
    flag_at = at.get(config.provisional_column or "")
    key_of: dict[tuple[str, Labels], int] = {}
    keys: list[tuple[str, Labels]] = []
    series: list[int] = []
    flags: list[bool] = []
    kept: list[int] = []
    repeated = False
    for row, record in enumerate(zip(*texts, strict=True)):
        try:
            key = (mapper.indicator(record), mapper.labels(record))
            flag = False if flag_at is None else \
                mapper.flag(record[flag_at], config.provisional_column or "")
        except Skip:
            continue
        except Reject:
            return None
        local = key_of.get(key)
        if local is None:
            local = key_of[key] = len(keys)
            keys.append(key)
        else:
            repeated = True
        kept.append(row)
        series.append(local)
        flags.append(flag)
    if repeated and config.duplicates != "sum":
        return None
    width = len(columns)
    size = len(kept) * width
    periods = np.array([period for _position, _name, period in columns], dtype=np.int64)
    chosen = values[np.array(kept, dtype=np.int64)] if len(kept) < len(values) else values
    # No denominator, and (without a flag column) nothing provisional: one value seen
    # through every position (read-only, no memory) rather than an array of copies.
    provisional = np.repeat(np.array(flags, dtype=np.bool_), width) if flag_at is not None \
        else np.broadcast_to(np.False_, (size,))
    batch = ObservationBatch(keys, np.repeat(np.array(series, dtype=np.int64), width),
                             np.tile(periods, len(kept)), chosen.reshape(-1),
                             np.broadcast_to(np.float64(np.nan), (size,)), provisional)
    if repeated:
        batch = batch.summed()
    return Parsed(batch=batch, rows=rows, skipped=rows - len(kept))


def _parse_wide(config: CsvSource, header: list[str], records: Iterator[tuple[list[str], int]],
                where: str, truncated: bool, origin: str, body: bytes | None) -> Parsed:
    source = config.name
    wanted = missing_columns(config, need_period=False)
    index = _index(source, where, header, wanted)

    def locate(column: str) -> Getter:
        return itemgetter(index[column])

    mapper = Mapper(config, source, config.static_labels, locate, need_period=False)
    columns = _period_columns(config, header, where, mapper)
    fast = _wide_columns(config, body, header, index, columns) if body is not None else None
    if fast is not None:
        return fast
    collector = Collector(source, by_series=True, add_up=config.duplicates == "sum")
    width = len(header)
    flag_getter = itemgetter(index[config.provisional_column]) \
        if config.provisional_column else None
    low = -sys.float_info.max if config.allow_negative else 0.0
    inf = math.inf
    allow_negative = config.allow_negative
    pending: tuple[list[str], int] | None = None

    def row(record: list[str], line: int) -> None:
        if not record or (len(record) == 1 and not record[0].strip()):
            return
        collector.rows += 1
        if len(record) != width:
            _shape_problem(collector, line, header, len(record))
            return
        try:
            indicator = mapper.indicator(record)
            labels = mapper.labels(record)
            flag = False
            if flag_getter is not None:
                flag = mapper.flag(flag_getter(record), config.provisional_column or "")
        except Skip:
            collector.skipped += 1
            return
        except Reject as rejected:
            collector.problem(line, rejected.field, rejected.reason, rejected.message)
            return
        out: list[Observation] = []
        for position, name, period in columns:
            cell = record[position]
            try:
                value: float | None = float(cell)
            except ValueError:
                value = None
            if value is None or not low <= value < inf:
                try:
                    value = mapper.number(cell, name, allow_negative=allow_negative)
                except Reject as rejected:
                    collector.problem(line, rejected.field, rejected.reason, rejected.message)
                    continue
                if value is None:
                    collector.skipped += 1
                    continue
            out.append(Observation(indicator, labels, period, value, None, flag))
        collector.add(line, out)

    for item in records:
        if pending is not None:
            row(*pending)
        pending = item
    if pending is not None:
        record, line = pending
        if truncated and record and len(record) != width:
            raise _truncation(source, origin, line, len(record), width)
        row(record, line)
    observations, problems = collector.result()
    return Parsed(observations, problems, rows=collector.rows, skipped=collector.skipped)
