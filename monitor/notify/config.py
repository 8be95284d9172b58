"""Configuration schema of the notification pipeline (``[notify]`` in the config file)."""

from __future__ import annotations

from monitor.configtypes import Section


class NotifyConfig(Section):
    """Routing tree, receivers, inhibition rules, time intervals and digests."""
