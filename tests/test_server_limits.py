"""What the real server (gunicorn, sync and gthread workers) answers at its limits: a chunked
body over ``max_payload_bytes`` is a 413 like one with ``Content-Length``, and the connection
closes after it; gunicorn's own refusals (414, 431, 400) are SCIM or JSON errors, never HTML.

Requests go over a raw socket: httpx would neither send a broken request nor show what the
server sends after the response."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .live import ERROR, LiveServer, serve, unique

LIMIT = 4096
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture(scope="module", params=["gthread", "sync"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """One server per worker class, with a small body limit."""
    threads = "4" if request.param == "gthread" else "1"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCIM_BRIDGE_MAX_PAYLOAD_BYTES", str(LIMIT))
        with serve("--threads", threads) as running:
            yield running


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    #: Bytes the server sent after the response (a second answer, if it parsed more).
    trailing: bytes
    #: Whether the server closed the connection (recv returned b"") after the response.
    closed: bool

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(server: LiveServer, raw: bytes) -> Exchange:
    """Send ``raw`` on a new connection; read until the server closes it or goes quiet."""
    host, port = server.base_url.removeprefix("http://").split(":")
    received = b""
    closed = False
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(raw)
        try:
            while chunk := connection.recv(65536):
                received += chunk
            closed = True
        except TimeoutError:
            pass
    head, _, rest = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return Exchange(int(status_line.split()[1]), headers, rest[:length], rest[length:], closed)


def request(method: str, target: str, headers: dict[str, str] | None = None,
            body: bytes = b"", *, chunked: bool = False) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    elif body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def scim_headers(server: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.scim_token}",
            "Content-Type": "application/scim+json"}


def user_body(user_name: str, size: int) -> bytes:
    """A valid POST /Users body of ``size`` bytes: padded with JSON whitespace, so that no value
    is longer than a column allows."""
    document = json.dumps({"schemas": [USER], "userName": user_name})
    return (document + " " * max(0, size - len(document))).encode()


def users_named(server: LiveServer, user_name: str) -> int:
    with server.client({}) as scim:
        response = scim.get("/Users", params={"filter": f'userName eq "{user_name}"'})
    assert response.status_code == 200, response.text
    return int(response.json()["totalResults"])


def assert_scim_error(answer: Exchange, status: int) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"].startswith(("application/scim+json",
                                                      "application/json"))
    body = answer.json()
    assert ERROR in body["schemas"]
    assert body["status"] == str(status)
    assert body["detail"]


def assert_json_error(answer: Exchange, status: int) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["error"] and body["error_description"]
    assert "schemas" not in body


def assert_closed_after(answer: Exchange) -> None:
    """Connection: close, then the connection really closed with nothing more sent."""
    assert answer.headers["connection"] == "close"
    assert answer.trailing == b""
    assert answer.closed


# -- request bodies over the limit ---------------------------------------------------------------


def test_chunked_body_over_the_limit_is_413_and_creates_nothing(server: LiveServer) -> None:
    name = unique("chunked-big")
    answer = exchange(server, request("POST", "/scim/v2/Users", scim_headers(server),
                                      user_body(name, 3 * LIMIT), chunked=True))
    assert_scim_error(answer, 413)
    assert_closed_after(answer)
    assert users_named(server, name) == 0


def test_chunked_body_over_the_limit_elsewhere_is_a_json_413(server: LiveServer) -> None:
    answer = exchange(server, request("POST", "/api/v1/sessions",
                                      {"Content-Type": "application/json"},
                                      b'{"pad": "' + b"x" * 2 * LIMIT + b'"}', chunked=True))
    assert_json_error(answer, 413)
    assert_closed_after(answer)


def test_chunked_body_under_the_limit_is_created(server: LiveServer) -> None:
    name = unique("chunked-small")
    answer = exchange(server, request("POST", "/scim/v2/Users", scim_headers(server),
                                      user_body(name, LIMIT - 100), chunked=True))
    assert answer.status == 201, answer.body
    assert answer.json()["userName"] == name
    assert users_named(server, name) == 1


def test_chunked_body_of_exactly_the_limit_is_accepted(server: LiveServer) -> None:
    name = unique("chunked-exact")
    body = user_body(name, LIMIT)
    assert len(body) == LIMIT
    answer = exchange(server, request("POST", "/scim/v2/Users", scim_headers(server), body,
                                      chunked=True))
    assert answer.status == 201, answer.body


@pytest.mark.parametrize("framing", [
    b"zz\r\nabc\r\n0\r\n\r\n",
    b"3\r\nabcdef\r\n0\r\n\r\n",
    b"3;\x01=x\r\nabc\r\n0\r\n\r\n",
], ids=["bad-size", "size-mismatch", "bad-extension"])
def test_malformed_chunks_are_400_not_500(server: LiveServer, framing: bytes) -> None:
    head = request("POST", "/scim/v2/Users", {**scim_headers(server),
                                              "Transfer-Encoding": "chunked"})
    answer = exchange(server, head + framing)
    assert_scim_error(answer, 400)
    assert answer.closed


def test_content_length_over_the_limit_is_413_and_closes(server: LiveServer) -> None:
    name = unique("declared-big")
    answer = exchange(server, request("POST", "/scim/v2/Users", scim_headers(server),
                                      user_body(name, 3 * LIMIT)))
    assert_scim_error(answer, 413)
    assert_closed_after(answer)
    assert users_named(server, name) == 0


# -- gunicorn's own refusals -------------------------------------------------------------------

SURFACES = [("/scim/v2/Users", assert_scim_error), ("/api/v1/sessions", assert_json_error)]


@pytest.mark.parametrize(("path", "assert_error"), SURFACES)
def test_request_line_too_long_is_414_in_the_surface_format(server, path, assert_error) -> None:
    answer = exchange(server, request("GET", f"{path}?filter={'a' * 10_000}"))
    assert_error(answer, 414)
    assert answer.closed


@pytest.mark.parametrize(("path", "assert_error"), SURFACES)
@pytest.mark.parametrize("headers", [
    {f"X-Header-{number}": "v" for number in range(200)},
    {"X-Large": "v" * 20_000},
], ids=["200-headers", "20kB-header"])
def test_too_many_or_too_large_headers_are_431(server, path, assert_error, headers) -> None:
    answer = exchange(server, request("GET", path, headers))
    assert answer.status in (400, 431), answer.body
    assert_error(answer, answer.status)
    assert answer.closed


@pytest.mark.parametrize("raw", [
    b"\x01\x02garbage\r\n\r\n",
    b"GET /scim/v2/Users\r\n\r\n",
    b"GET /scim/v2/Users HTTP/9.9\r\n\r\n",
    b"GET /scim/v2/Us ers HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["garbage", "no-version", "bad-version", "space-in-target"])
def test_garbage_request_is_400_json_never_html(server: LiveServer, raw: bytes) -> None:
    answer = exchange(server, raw)
    assert answer.status == 400, answer.body
    assert answer.headers["content-type"].startswith(("application/scim+json",
                                                      "application/json"))
    assert answer.json()
    assert b"<html" not in answer.body


def test_kept_alive_connection_still_serves_the_next_request(server: LiveServer) -> None:
    """The workers' peek at each request must not disturb keep-alive or pipelining."""
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()
    pipelined = exchange(server, request("GET", "/healthz") + request(
        "GET", "/healthz", {"Connection": "close"}))
    assert pipelined.status == 200
    if pipelined.headers["connection"] == "keep-alive":  # gthread; sync serves one per connection
        assert pipelined.trailing.startswith(b"HTTP/1.1 200")


# -- every 413 says so, whatever raised it ---------------------------------------------------


def test_every_413_says_connection_close(scim) -> None:
    """Werkzeug's (a declared body over the limit) and ours (Bulk over maxOperations) alike."""
    declared = scim.post("/Users", content=b"x" * 2_000_000)
    operations = [{"method": "DELETE", "path": f"/Users/{i}"} for i in range(1001)]
    bulk = scim.post("/Bulk", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": operations})
    for response in (declared, bulk):
        assert response.status_code == 413, response.text
        assert response.headers["Connection"] == "close"
    assert "Connection" not in scim.get("/Users").headers
