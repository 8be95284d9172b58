"""Checking receivers' message templates before they are needed (``monitor check-config``).

Each integration renders the two sample alerts ``monitor template render`` shows, under
the configured template budget. A template that exceeds the budget there would send
every real message with the plain fallback body, so it is worth a warning before the
daemon runs; other template errors depend on the alert and are left to the preview.
"""

from __future__ import annotations

from datetime import datetime

from jinja2 import TemplateError

from monitor.notify.channels import build_channels
from monitor.notify.config import NotifyConfig
from monitor.notify.notification import Notification, sample_alerts
from monitor.sandbox import BudgetExceeded, TemplateLimits, budget


def budget_warnings(config: NotifyConfig, limits: TemplateLimits, now: datetime) -> list[str]:
    """Return one line per integration whose templates exceed ``limits`` on sample alerts."""
    alerts = tuple(sample_alerts(now))
    warnings = []
    for receiver in config.receivers:
        notification = Notification(
            kind="alerts", receiver=receiver.name, group_key='{}:{alertname="BurglaryRising"}',
            group_labels={"alertname": "BurglaryRising"}, alerts=alerts, created_at=now,
            message_id="sample", thread_id="sample")
        for integration, channel in build_channels(receiver).items():
            try:
                with budget(limits):
                    channel.render_parts(notification)
            except BudgetExceeded as exc:
                warnings.append(f"warning: receiver {receiver.name!r}, {integration}: the "
                                "message templates exceed the template budget on a sample "
                                "alert, so messages would go out with the plain fallback "
                                f"body: {exc}")
            except TemplateError:
                continue
            finally:
                channel.close()
    return warnings
