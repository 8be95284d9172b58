"""Data sources: one module per kind, the shared HTTP fetcher, the poller and its commands.

Each kind's module (``csv.py``, ``json.py``, …) owns its config model and its parser;
``config.py`` joins the models into the ``[[sources]]`` union → ``registry.py`` (kind →
class) → ``poller.py`` (fetch → parse → store, on a schedule, health kept) → ``store/``.
"""
