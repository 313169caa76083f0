"""The streams service: the platform's long-lived responses, served from one asyncio loop.

A live log tail (``GET /api/v1/apps/<app>/logs?tail=1``, what ``corral logs -t`` reads)
and the dashboard's live log view (``GET /apps/<app>/logs/stream``, server-sent events)
stay open as long as someone watches. Served by the API's gunicorn they would each hold
one of its few threads; here each is a coroutine. The router sends those two paths on
the platform's hosts to this service (``AppRoute.streams``) and everything else to the
API. It checks the same tokens and session cookies as the API, re-checks them every few
seconds while a stream is open, and notices at once when a client goes away.
"""

__all__: list[str] = []
