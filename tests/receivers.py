"""A real HTTP receiver on loopback for delivery tests: it records every request and answers
from a script (e.g. 500 for the first three requests, then 200)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (a receiver that hangs).
    delay: float = 0.0
    #: The answer's body (e.g. an RFC 8935 error ``{"err", "description"}``).
    body: bytes = b""


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        #: Requests that arrived, answered or not yet (a hanging answer counts at once).
        self.arrived = 0
        self.script: list[Answer] = []
        self.default = Answer()
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._changed:
                    receiver.arrived += 1
                    answer = receiver.script.pop(0) if receiver.script else receiver.default
                if answer.delay:
                    time.sleep(answer.delay)
                with receiver._changed:
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        time.monotonic()))
                    receiver._changed.notify_all()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer_first(self, count: int, status: int, **headers: str) -> None:
        self.script.extend(Answer(status, headers) for _ in range(count))

    def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        """The first ``count`` requests, once they arrived (fails after ``seconds``)."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.requests)} of {count} requests arrived"
                self._changed.wait(left)
            return list(self.requests)

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """The payload of every request so far; each must carry a
        valid Standard Webhooks signature (the official package checks it)."""
        return [Webhook(secret).verify(r.body, r.headers) for r in self.requests]


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def register(admin: Any, url: str, events: list[str] | None = None) -> dict[str, Any]:
    """Register a webhook through the admin API; returns the answer (with the secret)."""
    body: dict[str, Any] = {"url": url} if events is None else {"url": url, "events": events}
    response = admin.post("/webhooks", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def ids(requests: list[Received]) -> list[str]:
    return [r.headers["webhook-id"] for r in requests]


def deliveries_of(admin: Any, event_type: str | None = None) -> list[dict[str, Any]]:
    """Every delivery of the admin's tenant's events (of ``event_type`` if given)."""
    params = {"count": 1000, **({"type": event_type} if event_type else {})}
    return [d for e in admin.get("/events", params=params).json()["events"]
            for d in e["deliveries"]]


def wait_until(check: Any, seconds: float = 10.0) -> Any:
    """``check()``'s first truthy answer, polled every 50 ms; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found
