"""Data sources: one module per kind, the shared HTTP fetcher, the poller and its commands.

``config.py`` (the ``[[sources]]`` schema) → ``registry.py`` (kind → class) →
``poller.py`` (fetch → parse → store, on a schedule, health kept) → ``store/``.
"""
