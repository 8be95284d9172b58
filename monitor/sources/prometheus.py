"""Operational KPIs kept in Prometheus: an instant or range query over its HTTP API.

Each returned series becomes one indicator series: its labels come from the metric's
labels through ``labels`` (our name = Prometheus label). Samples are bucketed into the
indicator's periods by their UTC date and combined with ``aggregate`` (the last sample
of a month, their sum, mean, max or min). Row references are ``result[i]`` or
``result[i].values[j]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from monitor.configtypes import Duration
from monitor.errors import PayloadError
from monitor.model import Frequency, Labels, Observation, RowProblem
from monitor.sources.base import (
    IndicatorId,
    LabelName,
    Parsed,
    Payload,
    Source,
    SourceBase,
    body_hash,
)
from monitor.sources.http import HttpOptions
from monitor.sources.json import load_document
from monitor.store.sourcestate import Validators


class PrometheusSource(SourceBase, HttpOptions):
    """An instant or range query against a Prometheus HTTP API."""

    kind: Literal["prometheus"]
    url: str
    query: str
    mode: Literal["instant", "range"] = "instant"
    lookback: Duration = 90 * 86400.0
    step: Duration = 86400.0
    aggregate: Literal["last", "sum", "mean", "max", "min"] = "last"
    indicator: IndicatorId | None = None
    indicator_label: str | None = None
    indicators: dict[str, IndicatorId] = Field(default_factory=dict)
    unmapped: Literal["skip", "reject"] = "reject"
    labels: dict[LabelName, str] = Field(default_factory=dict)
    frequency: Frequency = Frequency.MONTHLY
    allow_negative: bool = True

    @model_validator(mode="after")
    def _checks(self) -> PrometheusSource:
        if not re.match(r"^https?://", self.url):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        if (self.indicator is None) == (self.indicator_label is None):
            raise ValueError("give exactly one of indicator (a fixed id) or indicator_label "
                             "(a metric label whose value names the indicator)")
        return self

_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "last": lambda xs: xs[-1],
    "sum": math.fsum,
    "mean": lambda xs: math.fsum(xs) / len(xs),
    "max": max,
    "min": min,
}


class PrometheusKind(Source[PrometheusSource]):
    """``kind = "prometheus"``."""

    kind = "prometheus"
    config_type = PrometheusSource

    def fetch(self, previous: Validators) -> Payload:
        config = self.config
        now = self.deps.clock.now().timestamp()
        base = config.url.rstrip("/")
        if config.mode == "instant":
            url = f"{base}/api/v1/query"
            params = {"query": config.query, "time": f"{now:.3f}"}
        else:
            url = f"{base}/api/v1/query_range"
            params = {"query": config.query, "start": f"{now - config.lookback:.3f}",
                      "end": f"{now:.3f}", "step": f"{config.step:g}"}
        with self.http() as http:
            response = http.get(url, params=params, accept="application/json",
                                expect=(400, 422))
        hashed = body_hash(self.digest, response.body)
        return Payload(origin=url, body=response.body, content_type=response.content_type,
                       validators=Validators(content_hash=hashed, config_digest=self.digest),
                       unchanged=previous.for_config(self.digest).content_hash == hashed)

    def parse(self, payload: Payload) -> Parsed:
        return parse_prometheus(self.config, payload.body, origin=payload.origin,
                                content_type=payload.content_type)


@dataclass
class _Bucket:
    row: str
    values: list[float]


def parse_prometheus(config: PrometheusSource, body: bytes, *, origin: str,
                     content_type: str = "") -> Parsed:
    """Return the observations in a Prometheus API response and the samples rejected.

    Raises PayloadError when the body is not a Prometheus API answer or reports an error.
    """
    source = config.name
    document = load_document(source, origin, body, content_type)
    if not isinstance(document, dict) or "status" not in document:
        raise PayloadError(f"source {source!r}: {origin} did not answer like a Prometheus "
                           "API (no \"status\"); check url (the server's base URL)")
    if document["status"] != "success":
        raise PayloadError(f"source {source!r}: Prometheus refused the query: "
                           f"{document.get('errorType', 'error')}: {document.get('error', '')}")
    data = document.get("data") or {}
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        result, kind = [{"metric": {}, "value": result}], "vector"
    if kind not in ("vector", "matrix") or not isinstance(result, list):
        raise PayloadError(f"source {source!r}: unexpected Prometheus result type {kind!r}; "
                           "the query must return an instant vector or a range matrix")
    problems: list[RowProblem] = []
    buckets: dict[tuple[str, Labels, int], _Bucket] = {}
    rows = skipped = 0
    for position, series in enumerate(result):
        where = f"result[{position}]"
        metric = series.get("metric", {}) if isinstance(series, dict) else {}
        rows += 1
        try:
            indicator, labels = _identity(config, metric)
        except _Skip:
            skipped += 1
            continue
        except _Reject as rejected:
            problems.append(RowProblem(source, where, rejected.field, rejected.reason,
                                       rejected.message))
            continue
        samples = [series.get("value")] if kind == "vector" else series.get("values") or []
        for number, sample in enumerate(samples):
            at = where if kind == "vector" else f"{where}.values[{number}]"
            value = _sample(sample)
            if isinstance(value, str):
                problems.append(RowProblem(source, at, "value", "non_numeric", value))
                continue
            stamp, number_value = value
            if number_value < 0 and not config.allow_negative:
                problems.append(RowProblem(source, at, "value", "negative",
                                           f"{number_value:g} is negative"))
                continue
            try:
                period = config.frequency.ordinal(datetime.fromtimestamp(stamp, UTC).date())
            except (OverflowError, OSError, ValueError):
                problems.append(RowProblem(source, at, "time", "bad_period",
                                           f"{stamp!r} is not a Unix time this machine can "
                                           "represent"))
                continue
            bucket = buckets.setdefault((indicator, labels, period), _Bucket(at, []))
            bucket.values.append(number_value)
    combine = _AGGREGATES[config.aggregate]
    observations = [Observation(indicator, labels, period, combine(bucket.values))
                    for (indicator, labels, period), bucket in buckets.items()]
    return Parsed(observations, problems, rows=rows, skipped=skipped)


class _Skip(Exception):  # a signal
    pass


class _Reject(Exception):  # a signal
    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.field, self.reason, self.message = field, reason, message


def _identity(config: PrometheusSource, metric: dict[str, Any]) -> tuple[str, Labels]:
    if config.indicator is not None:
        indicator = config.indicator
    else:
        label = config.indicator_label or ""
        raw = metric.get(label)
        if raw is None:
            raise _Reject(label, "missing_label", f"the series has no label {label!r}")
        mapped = config.indicators.get(raw) if config.indicators else raw
        if mapped is None:
            if config.unmapped == "skip":
                raise _Skip
            raise _Reject(label, "unmapped", f"{raw!r} is not in indicators")
        indicator = mapped
    pairs = dict(config.static_labels)
    for name, prom_label in config.labels.items():
        value = metric.get(prom_label)
        if not value:
            raise _Reject(prom_label, "missing_label",
                          f"the series has no label {prom_label!r} (labels.{name})")
        pairs[name] = str(value)
    return indicator, tuple(sorted(pairs.items()))


def _sample(sample: Any) -> tuple[float, float] | str:
    """Return (unix time, value) of a ``[time, "value"]`` pair, or the reason it is unusable."""
    if not isinstance(sample, list) or len(sample) != 2:
        return f"{sample!r} is not a [time, value] pair"
    stamp, text = sample
    try:
        value = float(text)
        when = float(stamp)
    except (TypeError, ValueError):
        return f"{text!r} is not a number"
    if not math.isfinite(value):
        return f"{text} is not a finite number"
    return when, value
