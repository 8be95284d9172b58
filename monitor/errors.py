"""The exception tree.

    MonitorError                     everything the product raises on purpose
    ├── ConfigError                  config file or environment invalid; carries every problem
    ├── RuleFileError                rule files invalid; carries every problem
    ├── StoreError                   the store cannot be reached or is inconsistent
    │   └── StoreLockedError         a second process opened a SQLite store in use
    ├── SourceError                  a poll failed as a whole (payload-level)
    │   ├── FetchError               transport: timeout, refused, HTTP status
    │   └── PayloadError             body unusable: HTML for JSON, truncated, header drift
    ├── EvaluationError              one rule failed to evaluate
    └── DeliveryError                one notification attempt failed
                                     (``retryable`` says whether to try again)

Every error's message says where (file:line, source and row, field) and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass


class MonitorError(Exception):
    """Base of every error the product raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One located problem in an operator's file: ``path:line:column: where: message``."""

    path: str
    line: int | None
    column: int | None
    where: str
    message: str

    def __str__(self) -> str:
        location = self.path
        if self.line is not None:
            location += f":{self.line}"
            if self.column is not None:
                location += f":{self.column}"
        prefix = f"{location}: " if location else ""
        middle = f"{self.where}: " if self.where else ""
        return f"{prefix}{middle}{self.message}"


class ProblemsError(MonitorError):
    """An error that carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(ProblemsError):
    """The configuration (file or environment) is invalid."""


class RuleFileError(ProblemsError):
    """One or more rule files are invalid."""


class StoreError(MonitorError):
    """The store cannot be reached, migrated or is inconsistent."""


class StoreLockedError(StoreError):
    """A SQLite store is already used by another process."""


class SourceError(MonitorError):
    """A poll failed as a whole; the previous data is kept."""


class FetchError(SourceError):
    """The source could not be fetched (timeout, connection, HTTP status)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class PayloadError(SourceError):
    """The fetched body cannot be used (wrong content type, truncated, header drift)."""


class EvaluationError(MonitorError):
    """A rule failed to evaluate; the other rules still run."""


class DeliveryError(MonitorError):
    """A notification attempt failed.

    ``retryable`` is true for connection errors, 5xx and 429; false for other 4xx
    and authentication failures, which are recorded as dead letters.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
