"""Request-lifecycle defects that only show over a real socket, against a real ``fairaudit serve``
process: reads that waited for SQLite's write lock, bodies read before the key check, answers sent
before the commit, and slow clients never timed out. The server runs without its job supervisor; where
a job is needed the test is its worker (``job_helpers``)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from archives import CONFIG, make_zip
from job_helpers import finish, organisation_id, report, running_job
from live_server import LiveServer, live_server, wait_for
from sqlalchemy import select

from app.cohorts.models import Cohort
from app.db.engine import make_engine, make_read_session_factory
from app.jobs.models import Job

NO_SUPERVISOR = {"FAIRAUDIT_SUPERVISOR_ENABLED": "false"}
MiB = 1024 * 1024


def timed_get(server: LiveServer, path: str, headers: dict[str, str]) -> tuple[int, float]:
    started = time.monotonic()
    response = httpx.get(server.url + path, headers=headers, timeout=20)
    return response.status_code, time.monotonic() - started


class StreamReader(threading.Thread):
    """Reads a job's event stream in the background, collecting (event, data) pairs until ``end``."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.events: list[tuple[str, dict]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=httpx.Timeout(10, read=40)) as response:
                response.raise_for_status()
                name = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name:
                        self.events.append((name, json.loads(line[6:])))
                        if name == "end":
                            return
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def count(self, name: str) -> int:
        return sum(1 for event, _ in self.events if event == name)


def test_event_stream_delivers_while_other_requests_stay_fast(settings, keys, session_factory) -> None:
    """The stream once held SQLite's write lock for its whole life while its own polls waited for it:
    no event was sent, and every other request stalled ~30 s (the busy timeout)."""
    headers, admin = keys.headers(), keys.headers("admin")
    job_id = running_job(session_factory, organisation_id(session_factory))
    with live_server(settings, NO_SUPERVISOR) as server:
        stream = StreamReader(f"{server.url}/v1/jobs/{job_id}/events", headers)
        stream.start()
        wait_for(lambda: stream.error or stream.count("state") >= 2, timeout=10)
        for epoch in (1, 2, 3):
            report(session_factory, job_id, epoch)  # a job process writing progress meanwhile
            for path in (f"/v1/jobs/{job_id}", "/v1/jobs", "/v1/cohorts"):
                status, seconds = timed_get(server, path, headers)
                assert status == 200 and seconds < 5, (path, status, seconds)
            created = httpx.post(f"{server.url}/v1/keys", json={"role": "predictor"}, headers=admin, timeout=20)
            assert created.status_code == 201  # a write (like a prediction's rows) is not held up either
            wait_for(lambda n=epoch: stream.error or stream.count("progress") >= n, timeout=10)
        finish(session_factory, job_id)
        stream.join(timeout=20)
    assert stream.error is None, stream.error
    assert [e for e, _ in stream.events] == ["state", "state", "progress", "progress", "progress", "state", "end"]
    assert stream.events[-1] == ("end", {"status": "succeeded"})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reads_answer_while_another_connection_holds_the_write_lock(settings, keys, session_factory) -> None:
    headers, admin = keys.headers(), keys.headers("admin")
    job_id = running_job(session_factory, organisation_id(session_factory))
    finish(session_factory, job_id)
    with live_server(settings, NO_SUPERVISOR) as server:
        holder = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # e.g. a job process in the middle of a long write
        try:
            answers = {
                path: timed_get(server, path, admin if path == "/v1/keys" else headers)
                for path in (
                    "/v1/jobs",
                    f"/v1/jobs/{job_id}",
                    f"/v1/jobs/{job_id}/events",
                    "/v1/cohorts",
                    "/v1/cohorts/coh_missing",
                    "/v1/models",
                    "/v1/evaluations",
                    "/v1/keys",
                    "/readyz",
                    "/metrics",
                )
            }
        finally:
            holder.rollback()
            holder.close()
    assert {path: status for path, (status, _) in answers.items()} == {
        path: 404 if "missing" in path else 200 for path in answers
    }
    slow = {path: seconds for path, (_, seconds) in answers.items() if seconds > 5}
    assert slow == {}, "a read waited for the write lock"


FILE_PART = b'--b\r\nContent-Disposition: form-data; name="archive"; filename="a.zip"\r\n\r\n'


class Body:
    """A bounded request body (``head``, then MiB chunks) that counts the chunks the client could send."""

    def __init__(self, chunks: int, head: bytes = b"") -> None:
        self.chunks, self.head, self.sent = chunks, head, 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"\0" * (MiB - len(self.head))
        for i in range(self.chunks):
            self.sent += 1
            yield self.head + chunk if i == 0 else b"\0" * MiB


class Watch(threading.Thread):
    """Samples the growth of the server's RSS and of the files it holds open in its temporary directory
    (spooled uploads are unnamed there: ``tempfile`` opens them with O_TMPFILE) until stopped."""

    def __init__(self, pid: int, spool: Path) -> None:
        super().__init__(daemon=True)
        self.process, self.spool, self.stop = psutil.Process(pid), spool, threading.Event()
        self.base_rss, self.base_spooled = self.process.memory_info().rss, self.spooled()
        self.rss_growth = self.spool_growth = 0

    def spooled(self) -> int:
        total = 0
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                if os.readlink(fd).startswith(str(self.spool)):
                    total += fd.stat().st_size
            except OSError:  # closed meanwhile
                pass
        return total

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.rss_growth = max(self.rss_growth, self.process.memory_info().rss - self.base_rss)
            self.spool_growth = max(self.spool_growth, self.spooled() - self.base_spooled)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bodies_are_refused_unread_without_a_key_or_the_role(settings, keys, tmp_path) -> None:
    """A keyless 1 GiB upload was received and spooled to disk before its 401; keyless 200 MiB chunked JSON
    bodies were parsed (1.4 GB for four) and got 422; an over-limit chunked body got 400."""
    spool = tmp_path / "spool"
    spool.mkdir()
    env = {**NO_SUPERVISOR, "TMPDIR": str(spool), "FAIRAUDIT_MAX_REQUEST_BYTES": str(8 * MiB)}
    predictor, auditor = keys.headers("predictor"), keys.headers("auditor")
    multipart = {"content-type": "multipart/form-data; boundary=b"}
    with live_server(settings, env) as server:
        watch = Watch(server.pid, spool)
        watch.start()

        def post(path: str, body: Body, headers: dict[str, str]) -> tuple[int, float]:
            started = time.monotonic()
            response = httpx.post(server.url + path, content=body, headers=headers, timeout=60)
            return response.status_code, time.monotonic() - started

        declared = Body(1024, FILE_PART)  # 1 GiB of one file part, with Content-Length
        keyless_upload = post("/v1/cohorts", declared, {**multipart, "content-length": str(1024 * MiB)})
        chunked = Body(1024, FILE_PART)  # 1 GiB, chunked
        keyless_chunked = post("/v1/cohorts", chunked, multipart)
        json_bodies = [Body(200, b'{"cohort_id": "') for _ in range(4)]
        keyless_json = [post("/v1/jobs", b, {"content-type": "application/json"}) for b in json_bodies]
        wrong_role = Body(200, FILE_PART)
        predictor_upload = post("/v1/cohorts", wrong_role, {**multipart, **predictor})
        over_limit = Body(64)
        too_large = post("/v1/jobs", over_limit, {"content-type": "application/json", **auditor})
        watch.stop.set()
        watch.join()
    assert keyless_upload[0] == 401 and keyless_chunked[0] == 401
    assert [status for status, _ in keyless_json] == [401] * 4
    assert predictor_upload[0] == 403 and too_large[0] == 413
    sent = [b.sent for b in (declared, chunked, *json_bodies, wrong_role)]
    assert max(sent) < 64, f"MiB the server let the client send before refusing: {sent}"
    assert over_limit.sent < 64  # 8 MiB limit: the rest is not read
    slowest = max(seconds for _, seconds in (keyless_upload, keyless_chunked, *keyless_json, predictor_upload))
    assert slowest < 10
    assert watch.spool_growth == 0
    assert watch.rss_growth < 100 * MiB


def test_the_commit_precedes_the_answer(settings, keys) -> None:
    """With FastAPI's default dependency scope the session committed after the response was sent: 5 of
    15 uploads got their 202 before the cohort row existed (here 8 of 10 on SQLite, 4 on PostgreSQL)."""
    engine = make_engine(settings.database_url)
    read = make_read_session_factory(engine)  # on SQLite an ordinary session would wait for the commit
    headers = keys.headers()
    archive = make_zip(600)  # 600 item rows: a commit long enough for the old order to lose the race visibly
    missing = []
    with live_server(settings, NO_SUPERVISOR) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        for i in range(10):
            config = json.dumps({**CONFIG, "name": f"upload {i}"})
            response = http.post(
                "/v1/cohorts", headers=headers, files={"archive": ("c.zip", archive)}, data={"config": config}
            )
            assert response.status_code == 202, response.json()
            cohort_id = response.json()["id"]
            with read() as session:  # at once, on a connection of the test's own
                cohort = session.scalar(select(Cohort.id).where(Cohort.id == cohort_id))
                job = session.scalar(select(Job.id).where(Job.cohort_id == cohort_id))
            if cohort is None or job is None:
                missing.append(cohort_id)
    engine.dispose()
    assert missing == []


class SlowClient:
    """A connection that sends ``payload`` one byte per tick and notes when the server closed it."""

    def __init__(self, port: int, payload: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.payload, self.position = payload, 0
        self.opened, self.closed_after, self.answer = time.monotonic(), None, b""

    def tick(self) -> None:
        if self.closed_after is not None:
            return
        try:
            while chunk := self.sock.recv(4096):
                self.answer += chunk
            self._closed()  # recv returned b"": the server closed the connection
            return
        except BlockingIOError:
            pass
        except OSError:
            self._closed()
            return
        if self.position < len(self.payload):
            try:
                self.sock.send(self.payload[self.position : self.position + 1])
                self.position += 1
            except OSError:
                self._closed()

    def _closed(self) -> None:
        self.closed_after = time.monotonic() - self.opened
        self.sock.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_slow_clients_are_cut_off_while_the_server_stays_responsive(settings, keys) -> None:
    """10 connections trickling bytes once stayed open past 60 s (uvicorn times out idle keep-alive
    connections only)."""
    env = {
        **NO_SUPERVISOR,
        "FAIRAUDIT_HEADER_TIMEOUT_SECONDS": "2",
        "FAIRAUDIT_BODY_TIMEOUT_SECONDS": "2",
        "FAIRAUDIT_MAX_HEADER_BYTES": "8192",
    }
    auditor = keys.headers()["Authorization"]
    header_trickle = b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 500 + b"\r\n\r\n"
    body_trickle = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: {auditor}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode() + b" " * 100_000
    with live_server(settings, env) as server:
        clients = [SlowClient(server.port, header_trickle) for _ in range(10)]
        # the body tricklers send their headers at once, then trickle the body
        body_clients = []
        for _ in range(10):
            client = SlowClient(server.port, body_trickle)
            head = body_trickle.index(b"\r\n\r\n") + 4
            client.sock.sendall(body_trickle[:head])
            client.position = head
            body_clients.append(client)
        idle = SlowClient(server.port, b"")
        everyone = [*clients, *body_clients, idle]
        health_times = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(c.closed_after is None for c in everyone):
            for client in everyone:
                client.tick()
            health_times.append(timed_get(server, "/healthz", {}))
            time.sleep(0.2)
        too_large = httpx.get(f"{server.url}/healthz", headers={"X-Big": "b" * 10_000}, timeout=10)
    assert all(c.closed_after is not None and c.closed_after < 8 for c in everyone), [c.closed_after for c in everyone]
    assert all(c.answer.startswith(b"HTTP/1.1 408 ") for c in clients)
    assert all(status == 200 and seconds < 2 for status, seconds in health_times)
    assert too_large.status_code == 431


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_connections_past_the_cap_are_answered_503(settings) -> None:
    with live_server(settings, {**NO_SUPERVISOR, "FAIRAUDIT_MAX_CONNECTIONS": "4"}) as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        try:
            time.sleep(0.2)  # the server has accepted them
            refused = httpx.get(f"{server.url}/healthz", timeout=10)
        finally:
            for sock in held:
                sock.close()
        assert refused.status_code == 503
        assert wait_for(lambda: httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200, timeout=10)
