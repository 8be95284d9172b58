"""Notification channels: one module per integration, a base class, and this registry.

``CHANNELS`` maps an integration kind (the key under ``[[notify.receivers.<kind>]]``)
to its class; :func:`build_channels` makes one channel per configured integration of a
receiver, keyed ``"<kind>:<index>"`` — the outbox lane and the ``integration`` label.
"""

from __future__ import annotations

from monitor.clock import Clock
from monitor.notify.channels.alertmanager import AlertmanagerChannel
from monitor.notify.channels.base import Channel, Message, TemplateErrorHook
from monitor.notify.channels.console import ConsoleChannel
from monitor.notify.channels.email import EmailChannel
from monitor.notify.channels.file import FileChannel
from monitor.notify.channels.mattermost import MattermostChannel
from monitor.notify.channels.slack import SlackChannel
from monitor.notify.channels.teams import TeamsChannel
from monitor.notify.channels.webhook import WebhookChannel
from monitor.notify.config import INTEGRATION_KINDS, ReceiverConfig

CHANNELS: dict[str, type[Channel]] = {
    "email": EmailChannel,
    "slack": SlackChannel,
    "teams": TeamsChannel,
    "mattermost": MattermostChannel,
    "webhook": WebhookChannel,
    "alertmanager": AlertmanagerChannel,
    "file": FileChannel,
    "console": ConsoleChannel,
}
assert tuple(CHANNELS) == INTEGRATION_KINDS


def kind_of(integration: str) -> str:
    """``"slack:0"`` -> ``"slack"``."""
    return integration.partition(":")[0]


def build_channels(receiver: ReceiverConfig, *, clock: Clock | None = None,
                   timeout: float = 10.0, on_template_error: TemplateErrorHook | None = None
                   ) -> dict[str, Channel]:
    """Return ``{"slack:0": channel, …}`` for every integration of ``receiver``."""
    return {
        integration: CHANNELS[kind_of(integration)](
            receiver.name, integration, config, clock=clock, timeout=timeout,
            on_template_error=on_template_error)
        for integration, config in receiver.integrations()
    }


__all__ = ["CHANNELS", "Channel", "Message", "build_channels", "kind_of"]
