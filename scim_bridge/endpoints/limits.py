"""The body size limit for request bodies that carry no ``Content-Length``.

Werkzeug refuses a ``Content-Length`` over ``MAX_CONTENT_LENGTH`` before reading, but a
``Transfer-Encoding: chunked`` body has none: its stream just stops at the limit, and the JSON
parser would see a silently truncated body. Reading one byte past the limit turns that into the
same 413 (rendered, with ``Connection: close``, by the one error renderer). Reading the whole
body here also makes broken chunk framing a 400, never a 500 from deep in a JSON read."""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import InvalidSyntax


def init_app(app: Flask) -> None:
    app.before_request(refuse_oversized_stream)


def refuse_oversized_stream() -> None:
    if "chunked" not in request.environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return  # most requests: read straight from the environ, no header parsing
    limit = request.max_content_length
    if limit is None or request.content_length is not None:
        return  # no limit, or werkzeug checks the declared length itself
    try:
        body = request.get_data(cache=True)  # stops at the limit; later readers get the cache
        over_limit = len(body) >= limit and bool(request.environ["wsgi.input"].read(1))
    except HTTPException:
        raise
    except Exception:  # the server's chunk decoder (gunicorn's InvalidChunkSize, ...)
        raise InvalidSyntax("the chunked request body is malformed") from None
    if over_limit:
        raise RequestEntityTooLarge()
