"""The HTTP layer: ``/metrics`` for Grafana, the JSON API, the pages, health and reload.

- ``server.py``   ``create_app(daemon, observed)`` and the uvicorn thread
- ``observed.py`` the ``Observed`` protocol: everything the layer reads from the engine
- ``context.py``  shared handler state, auth (bearer token), series look-ups
- ``metrics.py``  the indicator collector (fast exposition) and HTTP metrics
- ``api.py``      ``/api/v1`` (pydantic models, so ``/api/openapi.json`` is complete)
- ``pages.py``    server-rendered pages; ``charts.py`` draws their SVG
- ``matchers.py`` label matchers typed in URLs (``?match=borough="Camden"``)
"""
