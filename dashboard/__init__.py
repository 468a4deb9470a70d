"""The MaskWatch dashboard: web pages, a JSON API, live updates (SSE) and Prometheus metrics, all read from Redis.

Start it with ``maskwatch dashboard`` (:func:`dashboard.server.main`); tests build the app with
:func:`dashboard.app.create_app`.
"""
