"""A real ``fairaudit serve`` process for tests whose defect only shows over a real socket (slow
clients, SIGKILL of the server, commit-versus-response order, memory growth of the server process).

The server binds 127.0.0.1 on a free port and uses the test's own ``Settings`` (database, folders);
extra ``FAIRAUDIT_*`` variables can be passed to change limits. ``benchmarks/bench_soak.py`` starts its
server this way too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from app.settings import Settings

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, step: float = 0.2) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("condition not reached in time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, as when the machine or the OOM killer ends the server."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def server_env(settings: Settings, port: int, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "FAIRAUDIT_DATABASE_URL": settings.database_url,
        "FAIRAUDIT_DATA_DIR": str(settings.data_dir),
        "FAIRAUDIT_MODEL_DIR": str(settings.model_dir),
        "FAIRAUDIT_HOST": "127.0.0.1",
        "FAIRAUDIT_PORT": str(port),
        "FAIRAUDIT_HEARTBEAT_SECONDS": "0.5",
        "FAIRAUDIT_STALE_AFTER_SECONDS": "10",
        **(extra_env or {}),
    }


def start_server(
    settings: Settings,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    log: Path | None = None,
) -> LiveServer:
    """Start ``fairaudit serve`` and wait until it answers ``/healthz``; its output goes to ``log``
    (appended) when given, else nowhere."""
    port = port or free_port()
    with open(log or os.devnull, "ab") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=server_env(settings, port, extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(process, port)
    try:
        wait_for(lambda: _healthy(server), timeout=60)
    except TimeoutError:
        server.stop()
        raise
    return server


@contextmanager
def live_server(
    settings: Settings, extra_env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[LiveServer]:
    server = start_server(settings, extra_env=extra_env, log=log)
    try:
        yield server
    finally:
        server.stop()


def _healthy(server: LiveServer) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError(f"the server exited with code {server.process.returncode} before it answered")
    try:
        return httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
