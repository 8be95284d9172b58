"""What the engine exposes after each evaluation: the contract the HTTP layer reads.

Columnar per indicator, so ``/metrics`` can export 100,000 series without building a
Python object per series; per-series detail (history, limits, comment) is computed on
demand for the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from monitor.model import Alert, Status

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class IndicatorInfo:
    """An indicator as defined in the rule files."""

    id: str
    name: str
    reference: str  # e.g. "SPI 1.1"
    unit: str  # percent, pp, count, rate_per_1000, ratio, currency, …
    direction: str  # up | down | neutral
    frequency: str  # monthly | quarterly | weekly | annual
    aggregation: str  # sum | mean | last
    window: int  # periods in the headline window (12 for a rolling year)
    parent: str | None = None
    children: tuple[str, ...] = ()
    group: str = ""  # heading in the scorecard, e.g. "Tackle serious acquisitive crime"
    description: str = ""


@dataclass
class IndicatorFrame:
    """The latest state of every series of one indicator, one array element per series."""

    info: IndicatorInfo
    labels: list[dict[str, str]]
    period: IntArray  # latest period ordinal with data, -1 when none
    value: FloatArray  # headline value (window aggregate or rate), NaN when unknown
    target: FloatArray  # target for the latest period's financial year, NaN when none
    status: IntArray  # Status.code per series
    changes: dict[str, FloatArray] = field(default_factory=dict)  # window name -> ratio
    provisional: npt.NDArray[np.bool_] | None = None


@dataclass(frozen=True)
class SeriesDetail:
    """Everything the indicator page and the scorecard row show for one series."""

    indicator: IndicatorInfo
    labels: dict[str, str]
    period_label: str  # "Jul-08"
    window_label: str  # "12 months to Jul-08"
    value: float | None
    value_text: str  # "77.0%", "-7.8%", "30.8"
    target: float | None
    target_text: str  # "78.9%", "-4%", "Baseline year"
    status: Status
    comment: str  # the generated analyst's comment
    spc_icon: str  # common_cause | improvement_high | concern_low | …
    periods: list[str]  # history axis labels
    history: list[float | None]  # monthly values (or rolling rate) for the sparkline/chart
    targets: list[float | None]  # target line per period
    mean: float | None = None  # SPC centre line
    upper: float | None = None  # SPC process limits
    lower: float | None = None
    special: list[int] = field(default_factory=list)  # SPC rule number per point, 0 none
    provisional: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class RuleHealth:
    """The health of one rule, as the rules page and API show it."""

    name: str
    group: str
    file: str
    health: str  # ok | err | unknown
    last_error: str
    last_evaluation: datetime | None
    duration_seconds: float
    evaluations: int
    failures: int
    alerts_firing: int
    alerts_pending: int


@dataclass
class Snapshot:
    """The engine's state after an evaluation at ``at``."""

    at: datetime | None
    frames: dict[str, IndicatorFrame]
    alerts: list[Alert]
    rules: list[RuleHealth]

    def status_of(self, indicator: str, labels: dict[str, str]) -> Status:
        frame = self.frames.get(indicator)
        if frame is None:
            return Status.UNKNOWN
        for i, candidate in enumerate(frame.labels):
            if candidate == labels:
                code = int(frame.status[i])
                return next(s for s in Status if s.code == code)
        return Status.UNKNOWN
