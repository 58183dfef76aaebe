"""Start a server process on a free loopback port, wait for it, keep its output, stop it.

The one server harness for the tests (``tests/live.py``, the multi-process test) and the
benchmarks (``bench/``). It lives with the tests because they run it on every change; the
bench scripts put the repository root on ``sys.path`` to import it. It needs only the
standard library and httpx, never pytest or the ``scim_bridge`` package.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

LOOPBACK = "127.0.0.1"
STARTUP_SECONDS = 60.0

#: Benchmarks and in-process tests send far more than an IdP does (a thousand requests a second):
#: limits this high keep the limiter's cost in every figure and path without ever answering 429
#: (settings fields, and the same as environment variables). tests/test_rate_limits.py sets its own.
UNTHROTTLED = {"rate_limit_scim": "1000000/second", "rate_limit_admin": "1000000/second"}
UNTHROTTLED_ENV = {f"SCIM_BRIDGE_{name.upper()}": value
                        for name, value in UNTHROTTLED.items()}


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def scim_bridge_command() -> list[str]:
    """The ``scim-bridge`` console script next to this interpreter, else the one on PATH, else
    the module run by this interpreter."""
    beside = Path(sys.executable).with_name("scim-bridge")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("scim-bridge")
    return [found] if found else [sys.executable, "-m", "scim_bridge.cli"]


def wait_healthy(
    base_url: str,
    process: subprocess.Popen[Any],
    describe: Callable[[], str],
    seconds: float = STARTUP_SECONDS,
    path: str = "/healthz",
    headers: Mapping[str, str] | None = None,
) -> None:
    """Wait until ``GET base_url+path`` answers 200; fail at once if the process exits.
    ``describe()`` explains a failure (the server's output)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}\n{describe()}")
        try:
            if httpx.get(f"{base_url}{path}", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server never answered {path} in {seconds:.0f} s\n{describe()}")


class ServerProcess:
    """A server this harness started in its own process group, with its output drained in
    the background (it never blocks on a full pipe) and kept for error messages."""

    def __init__(self, argv: list[str], env: Mapping[str, str], name: str = "server") -> None:
        self.name = name
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            argv,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # stop() signals the group: gunicorn's workers too
        )
        self._drains = [
            threading.Thread(target=self._drain, args=(stream, lines), daemon=True)
            for stream, lines in ((self.process.stdout, self.stdout),
                                  (self.process.stderr, self.stderr))
        ]
        for drain in self._drains:
            drain.start()

    def _drain(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, seconds: float = STARTUP_SECONDS) -> re.Match[str]:
        """The first stdout or stderr line matching ``pattern``; fails if the process exits
        or ``seconds`` pass first."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + seconds
        seen = {id(self.stdout): 0, id(self.stderr): 0}
        with self._changed:
            while True:
                for lines in (self.stdout, self.stderr):
                    for line in lines[seen[id(lines)]:]:
                        found = compiled.search(line)
                        if found:
                            return found
                    seen[id(lines)] = len(lines)
                left = deadline - time.monotonic()
                if self.process.poll() is not None and not any(d.is_alive() for d in self._drains):
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode} before printing "
                        f"{pattern!r}\n{self.tail()}"
                    )
                if left <= 0:
                    raise RuntimeError(f"{self.name} printed no {pattern!r}\n{self.tail()}")
                self._changed.wait(min(left, 0.2))

    def wait_healthy(self, base_url: str, seconds: float = STARTUP_SECONDS, **kwargs: Any) -> None:
        wait_healthy(base_url, self.process, self.tail, seconds, **kwargs)

    def tail(self) -> str:
        return "\n".join([f"-- {self.name} stdout", *self.stdout[-20:],
                          f"-- {self.name} stderr", *self.stderr[-40:]])

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it is still there after 20 s."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=10)
        for drain in self._drains:
            drain.join(timeout=5)


class BridgeServer(ServerProcess):
    """``scim-bridge serve`` on a free loopback port against ``database_url``; ``env`` is the
    whole environment (default: this process's)."""

    def __init__(
        self,
        database_url: str,
        *,
        env: Mapping[str, str] | None = None,
        serve_args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        environment = {**(os.environ if env is None else env),
                       "SCIM_BRIDGE_DATABASE_URL": database_url}
        argv = [*scim_bridge_command(), "serve", "--host", LOOPBACK, "--port", str(self.port),
                *serve_args]
        super().__init__(argv, environment, name="scim-bridge serve")

    def wait_healthy(self, base_url: str | None = None, seconds: float = STARTUP_SECONDS,
                     **kwargs: Any) -> None:
        super().wait_healthy(base_url or self.base_url, seconds, **kwargs)
