"""The operator's HTTP face: a REST API with an OpenAPI document, a WebSocket stream, a web dashboard.

Served by the API actor (``ops/api``, :mod:`sniperbot.api.actor`) when ``[api] enabled`` (the
default), on 127.0.0.1 and a free port; the URL is in ``<run dir>/endpoints.json`` (``api``), the
token in ``<run dir>/api.token`` (:mod:`sniperbot.api.config` says how it is chosen). Endpoints,
authentication and error codes: :mod:`sniperbot.api.server`; ``GET /api/v1/openapi.json`` lists them.
"""
