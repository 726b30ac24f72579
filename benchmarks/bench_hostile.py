"""Hostile-input benchmark: issue 10's attack corpus, generated at run time, against a real server.

Starts ``fairaudit serve`` on 127.0.0.1 over a new temporary data folder and SQLite database (or the
database ``--database-url`` names, migrated first), with an admin, an auditor and a predictor key and a
small exported model to predict with, then runs each attack and prints one row per attack:

- status: the HTTP status (``401``; ``401×4`` for several requests), ``timeout`` (no answer within
  ``--timeout`` seconds), ``closed`` (connection closed without an answer) or ``died`` (the server exited);
- seconds to answer (the slowest request of the attack; corpus building is not counted);
- ΔRSS: peak resident memory of the server and its job processes during the attack, minus before (psutil);
- files and rows left: new files under the data folder and the server's temporary folder, new rows in
  any table but the audit log, once the answer is in (and one second more);
- PASS when the attack is refused with a 4xx within ``--answer-within`` seconds, memory grew less than
  100 MB and nothing was left behind. Two attacks send valid input (an archive with 100,000 unlisted
  files, a 6 MB audit CSV): they pass when accepted within the same bounds, judged on the API process's
  own memory (their job may use more) and, for the archive, with no unlisted file kept. Slow clients pass
  when the server closes all ten connections within ``--slow-limit`` seconds.

After an attack that timed out or killed the server, the server is restarted (SIGKILL of it and its job
processes) so one hung request does not spill into the next row. Cohorts an attack created are deleted
through the API before the next one. The 2.1-million-entry zip is written directly (local headers,
central directory, ZIP64 end records: 189 MB in seconds) and checked against the default
``FAIRAUDIT_MAX_ARCHIVE_ENTRIES`` (500,000).

    .venv/bin/python benchmarks/bench_hostile.py                          # every attack, a few minutes
    .venv/bin/python benchmarks/bench_hostile.py --only dicom seed        # attacks whose name has a word
    .venv/bin/python benchmarks/bench_hostile.py --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from bench_serve import export, free_port, random_network, register_model, verified_files
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from sqlalchemy import Engine, inspect, text

from app.auth.service import create_key, ensure_organisation
from app.db.engine import make_engine, make_session_factory, transaction
from app.db.migrate import upgrade_to_head
from app.serving.runtime import load_model

MB = 1024 * 1024
RSS_LIMIT = 100 * MB
CHUNK = MB
COHORT = {
    "name": "hostile",
    "preset": "generic",
    "image_column": "image",
    "label_column": "label",
    "sensitive_attributes": ["sex"],
    "image_size": 32,
}
DICOM_COHORT = {"name": "hostile dicom", "preset": "dicom", "image_column": "image", "label_column": "label"}
AUDIT = {"name": "hostile audit", "sensitive_attributes": ["sex"], "threshold": 0.5}
SKIPPED_TABLES = {"audit_log", "alembic_version"}


# ---------------------------------------------------------------------------------------------- HTTP


@dataclass
class Stream:
    """A body part produced on the fly (a gigabyte of zeros need not exist anywhere)."""

    chunks: Callable[[], Iterator[bytes]]
    size: int


Blob = bytes | Path | Stream


def blob_size(blob: Blob) -> int:
    return len(blob) if isinstance(blob, bytes) else blob.stat().st_size if isinstance(blob, Path) else blob.size


def blob_chunks(blob: Blob) -> Iterator[bytes]:
    if isinstance(blob, Stream):
        yield from blob.chunks()
    elif isinstance(blob, Path):
        with blob.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk
    else:
        for start in range(0, len(blob), CHUNK):
            yield blob[start : start + CHUNK]


def zeros(size: int) -> Stream:
    block = bytes(CHUNK)
    return Stream(lambda: (block[: min(CHUNK, size - i)] for i in range(0, size, CHUNK)), size)


def multipart(fields: dict[str, str], files: dict[str, tuple[str, Blob]]) -> tuple[str, Stream]:
    boundary = "hostilebenchboundary"
    heads = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
    ]
    parts = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for k, (name, _) in files.items()
    ]
    tail = f"--{boundary}--\r\n".encode()
    blobs = [blob for _, blob in files.values()]

    def chunks() -> Iterator[bytes]:
        yield from heads
        for head, blob in zip(parts, blobs, strict=True):
            yield head
            yield from blob_chunks(blob)
            yield b"\r\n"
        yield tail

    size = sum(map(len, heads)) + sum(len(p) + blob_size(b) + 2 for p, b in zip(parts, blobs, strict=True)) + len(tail)
    return f"multipart/form-data; boundary={boundary}", Stream(chunks, size)


@dataclass
class Reply:
    status: str
    seconds: float
    note: str = ""
    problem: str = ""  # the attack's own reason to fail, beyond the common criteria
    head: bytes = b""  # the first 64 KB of the answer's body
    unsent: int = 0  # bytes of the request body not sent when the answer came


def http_request(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str],
    body: Blob = b"",
    *,
    chunked: bool = False,
    timeout: float,
) -> Reply:
    """One request on its own connection. The body is sent piece by piece and sending stops as soon as
    the server answers, as a server that refuses before reading the body does while a client still sends."""
    start = time.monotonic()
    deadline = start + timeout
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {blob_size(body)}")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sent = 0
        try:
            _send(sock, ("\r\n".join(lines) + "\r\n\r\n").encode(), deadline)
            for chunk in blob_chunks(body):
                framed = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                if not _send(sock, framed, deadline):
                    break
                sent += len(chunk)
            else:
                if chunked:
                    _send(sock, b"0\r\n\r\n", deadline)
        except OSError:
            pass  # the server closed the connection while the body was still coming: read its answer
        reply = _read_reply(sock, start, deadline)
    reply.unsent = blob_size(body) - sent
    if reply.unsent and sent > 10 * MB:
        reply.note = f"{reply.note}; answered after {sent // MB} of {blob_size(body) // MB} MiB".lstrip("; ")
    return reply


def _send(sock: socket.socket, data: bytes, deadline: float) -> bool:
    """Send ``data``; ``False`` as soon as the server has answered (or closed) or the deadline passed."""
    view = memoryview(data)
    while view:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        readable, writable, _ = select.select([sock], [sock], [], min(remaining, 1.0))
        if readable:
            return False
        if writable:
            view = view[sock.send(view) :]
    return True


def _read_reply(sock: socket.socket, start: float, deadline: float) -> Reply:
    sock.settimeout(max(deadline - time.monotonic(), 0.1))
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        seconds = time.monotonic() - start
        body = response.read()
    except TimeoutError:
        return Reply("timeout", time.monotonic() - start)
    except (http.client.HTTPException, OSError):
        return Reply("closed", time.monotonic() - start)
    return Reply(
        str(response.status), seconds, describe(response.getheader("content-type", ""), body), head=body[:65536]
    )


def describe(content_type: str, body: bytes) -> str:
    """A short note on an answer: the problem's detail and first named field or file, and its size when large."""
    note = " ".join(body[:60].decode(errors="replace").split()) if content_type.startswith("text/plain") else ""
    if "json" in content_type:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        note = str(parsed.get("detail") or "")[:50] if isinstance(parsed, dict) else ""
        errors = parsed.get("errors") if isinstance(parsed, dict) else None
        if errors and isinstance(errors[0], dict):
            where = next((f"{k} {errors[0][k]}" for k in ("field", "file", "column", "row") if k in errors[0]), "")
            note += f" [{where[:30]}]" if where else ""
    size = f"{len(body) / MB:.0f} MB body" if len(body) > 100_000 else ""
    return "; ".join(s for s in (note, size) if s)


# ---------------------------------------------------------------------------------------------- corpus


def image_bytes(fmt: str, size: int = 48, value: int = 120) -> bytes:
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width × height`` pixels over a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def dicom_bytes(rows: int, cols: int, *, deflate: bool = False, pixels: bool = True, age_vr: bytes = b"AS") -> bytes:
    """A 16-bit greyscale DICOM of zeros. Deflated ones are compressed while generated, so a
    gigabyte-sized image never exists in this process; ``age_vr`` rewrites PatientAge's value
    representation (``ZZ``: none that exists)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.1")
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflate else ExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.PatientSex, ds.PatientAge = "hostile-1", "F", "063Y"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    head, encoded = DicomBytesIO(), DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta)
    encoded.is_little_endian, encoded.is_implicit_VR = True, False
    write_dataset(encoded, ds)
    elements = encoded.getvalue().replace(b"\x10\x00\x10\x10AS", b"\x10\x00\x10\x10" + age_vr)
    size = rows * cols * 2 if pixels else 0
    pixel_head = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, size) if pixels else b""
    if not deflate:
        return head.getvalue() + elements + pixel_head + bytes(size)
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)  # DICOM deflate is raw deflate (PS3.5 A.5)
    out = [head.getvalue(), packer.compress(elements + pixel_head)]
    out += [packer.compress(chunk) for chunk in blob_chunks(zeros(size))]
    return b"".join([*out, packer.flush()])


def cohort_zip(images: dict[str, bytes], *, manifest: bytes | None = None, extra: int = 0) -> bytes:
    """A generic-preset archive: the images, a manifest listing them (or ``manifest``), and ``extra``
    empty files the manifest does not list."""
    rows = ["image,label,sex", *(f"{name},{i % 2},{'fm'[i % 3 == 0]}" for i, name in enumerate(images))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("manifest.csv", manifest if manifest is not None else "\n".join(rows) + "\n")
        for name, data in images.items():
            zf.writestr(name, data)
        for i in range(extra):
            zf.writestr(f"junk/{i:06d}.bin", b"")
    return buffer.getvalue()


def good_images(n: int = 20) -> dict[str, bytes]:
    return {f"img/{i}.png": image_bytes("PNG", value=i) for i in range(n)}


def with_bad_image(name: str, data: bytes) -> bytes:
    return cohort_zip({**good_images(), name: data})


def many_entry_zip(path: Path, n: int) -> Path:
    """``n`` empty files, written directly (zipfile takes minutes for millions): local headers, the
    central directory, then the ZIP64 end records (the classic end record counts at most 65,535)."""
    local, central = struct.Struct("<IHHHHHIIIHH"), struct.Struct("<IHHHHHHIIIHHHHHII")
    names = [f"{i:07d}".encode() for i in range(n)]
    step = local.size + 7
    with path.open("wb") as out:
        out.write(b"".join(local.pack(0x04034B50, 20, 0, 0, 0, 0, 0, 0, 0, 7, 0) + name for name in names))
        directory = b"".join(
            central.pack(0x02014B50, 45, 20, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, step * i) + name
            for i, name in enumerate(names)
        )
        out.write(directory)
        end64 = step * n + len(directory)
        out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(directory), step * n))
        out.write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    return path


def predictions_csv(rows: int, *, huge_cell: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, rows)
    score = np.clip(y * 0.3 + rng.random(rows) * 0.7, 0, 1)
    sex = np.where(rng.random(rows) < 0.5, "female", "male")
    lines = ["y_true,y_score,sex", *(f"{a},{b:.6f},{c}" for a, b, c in zip(y, score, sex, strict=True))]
    if huge_cell:
        lines[1] = f"1,0.5,{'x' * 200_000}"
    return ("\n".join(lines) + "\n").encode()


# ---------------------------------------------------------------------------------------------- server


class MemoryProbe:
    """Samples the RSS of the server and its job processes every 50 ms; peaks minus the first sample."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.base_total, self.base_api = self._sample()
        self.peak_total, self.peak_api = self.base_total, self.base_api
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> tuple[int, int]:
        try:
            api = self.process.memory_info().rss
            children = self.process.children(recursive=True)
        except psutil.Error:
            return 0, 0
        total = api
        for child in children:
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total, api

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            total, api = self._sample()
            self.peak_total, self.peak_api = max(self.peak_total, total), max(self.peak_api, api)

    def stop(self) -> tuple[int, int]:
        """(server + job processes, API process alone) peak growth in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak_total - self.base_total, self.peak_api - self.base_api


class Bench:
    """The server under attack, its folders and database, and helpers to call it."""

    def __init__(self, root: Path, database_url: str | None, timeout: float, slow_limit: float) -> None:
        self.root, self.timeout, self.slow_limit = root, timeout, slow_limit
        self.data, self.tmp = root / "data", root / "tmp"
        self.tmp.mkdir(parents=True)
        self.database_url = database_url or f"sqlite:///{root / 'fairaudit.db'}"
        self.engine: Engine = make_engine(self.database_url)
        upgrade_to_head(self.engine)
        self.keys = self._keys_and_model()
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = (root / "server.log").open("ab")

    def _keys_and_model(self) -> dict[str, str]:
        net = random_network("small", 32, seed=0)
        val = np.random.default_rng(0).normal(size=(32, 3, 32, 32)).astype(np.float32)
        folder = self.root / "export" / "mdl_bench"
        exported = export(net, "small", folder, val, [0.3, 0.2, 0.1, 0.1])
        model = load_model(verified_files(folder, exported), 1, ["CPUExecutionProvider"])
        with transaction(make_session_factory(self.engine)) as session:
            org = ensure_organisation(session, f"hostile bench {self.root.name}")
            keys = {role: create_key(session, org.id, role)[1] for role in ("admin", "auditor", "predictor")}
            self.model_id = register_model(session, org.id, folder, model, self.root / "models")
        return keys

    # -- lifecycle

    def start(self) -> None:
        env = {
            **os.environ,
            "FAIRAUDIT_DATABASE_URL": self.database_url,
            "FAIRAUDIT_DATA_DIR": str(self.data),
            "FAIRAUDIT_MODEL_DIR": str(self.root / "models"),
            "FAIRAUDIT_HOST": "127.0.0.1",
            "FAIRAUDIT_PORT": str(self.port),
            "FAIRAUDIT_INGEST_WORKERS": "1",
            "FAIRAUDIT_HEARTBEAT_SECONDS": "0.5",
            "FAIRAUDIT_CANCEL_GRACE_SECONDS": "2",
            "TMPDIR": str(self.tmp),  # spooled request bodies land here, where leftovers are counted
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = Path(self.log.name).read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{tail}")
            try:
                if http_request(self.port, "GET", "/healthz", {}, timeout=2).status == "200":
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the server did not answer /healthz within 90 s")

    def stop(self) -> None:
        """SIGKILL the server and every process it started (job processes may not die with it)."""
        if self.process is None:
            return
        try:
            doomed = [*psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            doomed = []
        self.process.kill()
        self.process.wait(timeout=30)
        for child in doomed:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(doomed, timeout=10)
        self.process = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- calls

    def call(
        self,
        method: str,
        target: str,
        *,
        role: str | None = "auditor",
        body: Blob = b"",
        content_type: str = "",
        **kw: Any,
    ) -> Reply:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        if content_type:
            headers["Content-Type"] = content_type
        return http_request(self.port, method, target, headers, body, timeout=self.timeout, **kw)

    def upload(self, archive: Blob, config: dict[str, Any] | str = COHORT, role: str | None = "auditor") -> Reply:
        raw = config if isinstance(config, str) else json.dumps(config)
        content_type, body = multipart({"config": raw}, {"archive": ("cohort.zip", archive)})
        return self.call("POST", "/v1/cohorts", role=role, body=body, content_type=content_type)

    def audit(self, csv: bytes, config: dict[str, Any] = AUDIT) -> Reply:
        content_type, body = multipart({"config": json.dumps(config)}, {"predictions": ("p.csv", csv)})
        return self.call("POST", "/v1/audits", body=body, content_type=content_type)

    def predict(self, image: bytes) -> Reply:
        content_type, body = multipart({}, {"images": ("image.dcm", image)})
        return self.call(
            "POST", f"/v1/models/{self.model_id}/predict", role="predictor", body=body, content_type=content_type
        )

    # -- state

    def files(self) -> set[str]:
        return {str(p) for folder in (self.data, self.tmp) if folder.exists() for p in folder.rglob("*") if p.is_file()}

    def rows(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            names = [t for t in inspect(conn).get_table_names() if t not in SKIPPED_TABLES]
            return {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in names}

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar_one()

    def settle(self, limit: float = 20) -> None:
        """Delete the cohorts attacks created (cancelling their ingestion) and wait for jobs to end."""
        with self.engine.connect() as conn:
            live = [r[0] for r in conn.execute(text("SELECT id FROM cohorts WHERE deleted_at IS NULL"))]
        for cohort_id in live:
            self.call("DELETE", f"/v1/cohorts/{cohort_id}")
        deadline = time.monotonic() + limit
        busy = "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
        while self.scalar(busy) and time.monotonic() < deadline:
            time.sleep(0.5)


# ---------------------------------------------------------------------------------------------- attacks


def worst(replies: list[Reply]) -> Reply:
    """One row for several requests: their statuses counted, the slowest time."""
    statuses = [r.status for r in replies]
    shown = ", ".join(f"{s}×{statuses.count(s)}" for s in dict.fromkeys(statuses))
    slowest = max(replies, key=lambda r: r.seconds)
    return Reply(shown if len(replies) > 1 else statuses[0], slowest.seconds, slowest.note)


def concurrently(calls: list[Callable[[], Reply]]) -> list[Reply]:
    results: list[Reply] = []
    threads = [threading.Thread(target=lambda c=c: results.append(c())) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def predict_deflate_bomb(b: Bench) -> Reply:
    return b.predict(dicom_bytes(23_000, 23_000, deflate=True))  # 1 MB that inflates to 1 GiB


def predict_64_megapixels(b: Bench) -> Reply:
    return b.predict(dicom_bytes(8_000, 8_000, deflate=True))  # 125 KB, 64 MP of 16-bit pixels


def cohort_deflated_dicom(b: Bench) -> Reply:
    archive = cohort_zip({"a.dcm": dicom_bytes(14_000, 14_000, deflate=True)}, manifest=b"image,label\na.dcm,1\n")
    return b.upload(archive, DICOM_COHORT)  # a 390 MB dataset behind 380 KB


def cohort_malformed_patient_age(b: Bench) -> Reply:
    images = {f"{i}.dcm": dicom_bytes(8, 8, age_vr=b"ZZ" if i == 0 else b"AS") for i in range(4)}
    manifest = ("image,label\n" + "".join(f"{name},{i % 2}\n" for i, name in enumerate(images))).encode()
    return b.upload(cohort_zip(images, manifest=manifest), DICOM_COHORT)


def manifest_header_100mb(b: Bench) -> Reply:
    columns = ",".join(f"c{i:07d}" for i in range(100 * MB // 9))
    return b.upload(cohort_zip(good_images(), manifest=f"image,label,sex,{columns}\n".encode()))


def manifest_100k_columns(b: Bench) -> Reply:
    header = "image,label,sex," + ",".join(f"extra{i}" for i in range(100_000))
    return b.upload(cohort_zip(good_images(), manifest=f"{header}\nimg/0.png,1,f{',' * 100_000}\n".encode()))


def manifest_missing_images(b: Bench) -> Reply:
    rows = "".join(f"img/missing{i}.png,{i % 2},f\n" for i in range(1_000_000))
    return b.upload(cohort_zip({}, manifest=f"image,label,sex\n{rows}".encode()))


def manifest_huge_cell(b: Bench) -> Reply:
    images = good_images()
    rows = [f"{name},{i % 2},{'f' if i else 'x' * 200_000}" for i, name in enumerate(images)]
    return b.upload(cohort_zip(images, manifest=("image,label,sex\n" + "\n".join(rows) + "\n").encode()))


def read_before_refusal(reply: Reply) -> Reply:
    """A keyless request must be refused on its headers: a server that takes the whole body first fails."""
    reply.problem = "" if reply.unsent else "the whole body was taken before the answer"
    return reply


def keyless_upload_1gib(b: Bench) -> Reply:
    content_type, body = multipart({"config": json.dumps(COHORT)}, {"archive": ("big.zip", zeros(1024 * MB))})
    return read_before_refusal(b.call("POST", "/v1/cohorts", role=None, body=body, content_type=content_type))


def keyless_chunked_json(b: Bench) -> Reply:
    parts = [b'{"cohort_id": "coh_x", "pad": "', *[b"a" * CHUNK] * 200, b'"}']
    body = Stream(lambda: iter(parts), sum(map(len, parts)))

    def one() -> Reply:
        reply = b.call("POST", "/v1/jobs", role=None, body=body, content_type="application/json", chunked=True)
        return read_before_refusal(reply)

    replies = concurrently([one] * 4)
    reply = worst(replies)
    reply.problem = next((r.problem for r in replies if r.problem), "")
    return reply


def zip_2_1m_entries(b: Bench) -> Reply:
    return b.upload(many_entry_zip(b.root / "corpus-2.1M.zip", 2_100_000))


def zip_unlisted_files(b: Bench) -> Reply:
    reply = b.upload(cohort_zip(good_images(), extra=100_000))
    if reply.status.startswith("2"):
        kept = [p for p in (b.data / "cohorts").rglob("junk/*")]
        reply.problem = f"{len(kept)} unlisted files kept" if kept else ""
    return reply


def audit_6mb(b: Bench) -> Reply:
    return b.audit(predictions_csv(360_000))  # 6 MB of valid predictions


def audit_huge_cell(b: Bench) -> Reply:
    return b.audit(predictions_csv(100, huge_cell=True))


def split_seed_minus_one(b: Bench) -> Reply:
    return b.upload(cohort_zip(good_images()), {**COHORT, "split": {"mode": "random", "seed": -1}})


def audit_seed_minus_one(b: Bench) -> Reply:
    return b.audit(predictions_csv(200), {**AUDIT, "seed": -1})


def config_nested_deep(b: Bench) -> Reply:
    return b.upload(cohort_zip(good_images()), '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}")


def cursor_naive(b: Bench) -> Reply:
    cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", "coh_x"]).encode()).decode()
    return b.call("GET", f"/v1/cohorts?cursor={cursor.rstrip('=')}")


def name_nul(b: Bench) -> Reply:
    return b.upload(cohort_zip(good_images()), {**COHORT, "name": "ward\x00a"})


def name_right_to_left(b: Bench) -> Reply:
    body = b'{"role": "auditor", "name": "scan\\u202egnp.exe"}'
    return b.call("POST", "/v1/keys", role="admin", body=body, content_type="application/json")


BAD_IMAGES: dict[str, Callable[[], tuple[str, bytes]]] = {
    "truncated PNG": lambda: ("img/bad.png", image_bytes("PNG")[:600]),
    "truncated JPEG": lambda: ("img/bad.jpg", image_bytes("JPEG")[:500]),
    "GIF": lambda: ("img/bad.gif", image_bytes("GIF")),
    "TIFF": lambda: ("img/bad.tif", image_bytes("TIFF")),
    "100000x100000 PNG header": lambda: ("img/bad.png", png_header_only(100_000, 100_000)),
    "pixel-less DICOM": lambda: ("img/bad.dcm", dicom_bytes(64, 64, pixels=False)),
}


def bad_image(kind: str) -> Callable[[Bench], Reply]:
    def attack(b: Bench) -> Reply:
        return b.upload(with_bad_image(*BAD_IMAGES[kind]()))

    return attack


def slow_clients(b: Bench, first: bytes, trickle: bytes) -> Reply:
    """Ten connections that send ``first`` and then one byte of ``trickle`` a second; the server must
    close them (or answer 408) within ``b.slow_limit`` seconds."""
    start, limit = time.monotonic(), b.slow_limit
    socks = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(10)]
    closed: dict[int, float] = {}
    try:
        for sock in socks:
            sock.sendall(first)
        step = 0
        while len(closed) < len(socks) and time.monotonic() - start < limit:
            for i, sock in enumerate(socks):
                if i in closed:
                    continue
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:  # an answer (408) or the end of the connection
                    closed[i] = time.monotonic() - start
                    continue
                try:
                    sock.sendall(trickle[step % len(trickle) : step % len(trickle) + 1])
                except OSError:
                    closed[i] = time.monotonic() - start
            step += 1
            time.sleep(1)
    finally:
        for sock in socks:
            sock.close()
    seconds = max(closed.values()) if len(closed) == len(socks) else time.monotonic() - start
    reply = Reply(f"closed {len(closed)}/10", seconds)
    reply.problem = "" if len(closed) == len(socks) else f"{len(socks) - len(closed)} still open after {limit:.0f} s"
    return reply


def slow_headers(b: Bench) -> Reply:
    return slow_clients(b, b"POST /v1/cohorts HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"a" * 64)


def slow_body(b: Bench) -> Reply:
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {b.keys['auditor']}\r\nContent-Length: 1000000\r\n\r\n"
    ).encode()
    return slow_clients(b, head, b'{"cohort_id": "' + b"a" * 64)


def keyless_long_paths(b: Bench) -> Reply:
    """51 keyless POSTs with 60 KB paths: refused, and the audit log may not grow by megabytes."""
    before = b.scalar("SELECT coalesce(max(id), 0) FROM audit_log")
    replies = [b.call("POST", "/v1/cohorts/" + "a" * 60_000, role=None) for _ in range(51)]
    grown = b.scalar(
        "SELECT coalesce(sum(length(path)) + sum(length(coalesce(action, ''))), 0) FROM audit_log "
        f"WHERE id > {int(before)}"
    )
    reply = worst(replies)
    reply.note = f"audit log +{int(grown) / 1024:.0f} KB"
    reply.problem = f"audit log grew {int(grown) / MB:.1f} MB" if grown > 100_000 else ""
    return reply


def metrics_keyless(b: Bench) -> Reply:
    return b.call("GET", "/metrics", role=None)


def docs_offline(b: Bench) -> Reply:
    reply = b.call("GET", "/docs", role=None)
    external = [u for u in (b"http://", b"https://", b"//cdn") if u in reply.head]
    reply.problem = f"loads from another host ({b', '.join(external).decode()})" if external else ""
    return reply


@dataclass
class Attack:
    name: str
    run: Callable[[Bench], Reply]
    expect: str = "4xx"  # "4xx" refused; "2xx" valid input, accepted; "closed" slow clients


ATTACKS = [
    Attack("predict: deflated DICOM bomb (1 MB -> 1 GiB)", predict_deflate_bomb),
    Attack("predict: 64-megapixel DICOM (125 KB)", predict_64_megapixels),
    Attack("cohort: deflated DICOM (380 KB -> 390 MB)", cohort_deflated_dicom),
    Attack("cohort: DICOM PatientAge with VR 'ZZ'", cohort_malformed_patient_age),
    Attack("manifest: 100 MB one-line header", manifest_header_100mb),
    Attack("manifest: 100,000-column header", manifest_100k_columns),
    Attack("manifest: 1,000,000 missing-image rows", manifest_missing_images),
    Attack("manifest: 200,000-character cell", manifest_huge_cell),
    Attack("keyless: 1 GiB upload", keyless_upload_1gib),
    Attack("keyless: 4 x 200 MiB chunked JSON", keyless_chunked_json),
    Attack("keyless: 51 POSTs with 60 KB paths", keyless_long_paths),
    Attack("zip: 2.1 M entries", zip_2_1m_entries),
    Attack("zip: 100,000 unlisted files", zip_unlisted_files, expect="2xx"),
    Attack("audit: 6 MB CSV", audit_6mb, expect="2xx"),
    Attack("audit: 200,000-character cell", audit_huge_cell),
    *(Attack(f"image: {kind}", bad_image(kind)) for kind in BAD_IMAGES),
    Attack("split seed -1", split_seed_minus_one),
    Attack("audit seed -1", audit_seed_minus_one),
    Attack("config nested 100,000 deep", config_nested_deep),
    Attack("cursor with a naive timestamp", cursor_naive),
    Attack("cohort name with NUL", name_nul),
    Attack("key name with right-to-left override", name_right_to_left),
    Attack("slow clients: 10 trickling headers", slow_headers, expect="closed"),
    Attack("slow clients: 10 trickling bodies", slow_body, expect="closed"),
    Attack("/metrics without a key", metrics_keyless),
    Attack("/docs without a CDN", docs_offline, expect="2xx"),
]


# ---------------------------------------------------------------------------------------------- runner


@dataclass
class Row:
    attack: Attack
    reply: Reply
    growth: int
    files: int
    rows: int
    verdict: str


def judge(attack: Attack, reply: Reply, growth: int, files: int, rows: int, within: float) -> str:
    """'PASS', or 'FAIL: ' and every criterion missed."""
    wanted = {"4xx": "4", "2xx": "2"}.get(attack.expect)
    missed = []
    if wanted and not reply.status.startswith(wanted):
        missed.append(f"status {reply.status}")
    if wanted and reply.seconds > within:
        missed.append(f"{reply.seconds:.0f} s")
    if growth >= RSS_LIMIT:
        missed.append(f"+{growth // MB} MB")
    if attack.expect != "2xx" and (files or rows):
        missed.append(f"{files} files, {rows} rows left")
    if reply.problem:
        missed.append(reply.problem)
    return "FAIL: " + "; ".join(missed) if missed else "PASS"


def run_attack(bench: Bench, attack: Attack, within: float) -> Row:
    if not bench.alive:
        bench.start()
    bench.settle()
    files_before, rows_before = bench.files(), bench.rows()
    assert bench.process is not None
    probe = MemoryProbe(bench.process.pid)
    try:
        reply = attack.run(bench)
    except Exception as exc:  # the harness reports an attack that broke instead of stopping
        reply = Reply("error", 0.0, f"{type(exc).__name__}: {exc}"[:80])
    time.sleep(1.0)
    total, api = probe.stop()
    if not bench.alive:
        reply.status = "died"
    left_files = len(bench.files() - files_before)
    after = bench.rows()
    left_rows = sum(max(0, after.get(t, 0) - n) for t, n in rows_before.items())
    growth = api if attack.expect == "2xx" else total  # a valid upload's job may use memory of its own
    row = Row(attack, reply, growth, left_files, left_rows, judge(attack, reply, growth, left_files, left_rows, within))
    if reply.status in ("timeout", "died", "error") or not bench.alive:
        bench.stop()  # a hung or dead server would spill into the next attack
    return row


def print_table(rows: list[Row]) -> None:
    header = f"| {'attack':<44} | {'status':<16} | {'s':>6} | {'ΔRSS MB':>7} | files | rows | verdict"
    print(header)
    print("|" + "-" * 46 + "|" + "-" * 18 + "|" + "-" * 8 + "|" + "-" * 9 + "|-------|------|---------")
    for r in rows:
        note = f" ({r.reply.note})" if r.reply.note else ""
        print(
            f"| {r.attack.name:<44} | {r.reply.status:<16} | {r.reply.seconds:6.2f} | {r.growth / MB:7.0f} | "
            f"{r.files:5d} | {r.rows:4d} | {r.verdict}{note}"
        )
    passed = sum(r.verdict == "PASS" for r in rows)
    print(f"\n{passed} of {len(rows)} attacks passed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="a database for the server (default: a new SQLite file)")
    parser.add_argument("--only", nargs="*", default=[], help="run the attacks whose name contains one of these")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds an attack's requests may take")
    parser.add_argument("--answer-within", type=float, default=10.0, help="seconds a refusal may take to PASS")
    parser.add_argument("--slow-limit", type=float, default=30.0, help="seconds a slow client may stay connected")
    args = parser.parse_args()
    chosen = [a for a in ATTACKS if not args.only or any(w.lower() in a.name.lower() for w in args.only)]
    with tempfile.TemporaryDirectory(prefix="bench_hostile_") as tmp:
        bench = Bench(Path(tmp), args.database_url, args.timeout, args.slow_limit)
        started = time.monotonic()
        rows = []
        try:
            for attack in chosen:
                row = run_attack(bench, attack, args.answer_within)
                print(f"  {row.attack.name}: {row.reply.status}, {row.reply.seconds:.1f} s, {row.verdict}", flush=True)
                rows.append(row)
        finally:
            bench.stop()
            bench.engine.dispose()
        print(f"\n{len(rows)} attacks in {time.monotonic() - started:.0f} s\n")
        print_table(rows)


if __name__ == "__main__":
    main()
