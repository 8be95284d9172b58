"""The policy one rule gives the alert state machine: how long a condition must hold
before firing (``for``) and how flapping is detected. Defined here, below the rules that
configure it, so the state machine depends on nothing above it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForSpec(_Strict):
    """How long a condition must hold before firing: a duration, evaluations or periods."""

    seconds: float = 0.0
    evaluations: int = 0
    periods: int = 0


class Flapping(_Strict):
    """Nagios-style flap detection over the last ``window`` results."""

    window: int = Field(default=21, ge=4, le=64)
    high: float = Field(default=0.5, gt=0, le=1)  # start flapping above this weighted share
    low: float = Field(default=0.25, ge=0, lt=1)  # stop flapping below this

    @model_validator(mode="after")
    def _order(self) -> Flapping:
        if self.low >= self.high:
            raise ValueError("flapping.low must be below flapping.high")
        return self
