"""The server's cap on glibc malloc arenas and its periodic trim (``app.core.native_memory``), in real processes.

Each check runs in a fresh interpreter: arenas are per process, made as threads first allocate, and the
cap must be set before they are. glibc's ``malloc_info`` lists one ``<heap>`` per arena.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc arenas are glibc's")

THREADS = 12

ARENAS_SCRIPT = textwrap.dedent(
    """
    import ctypes, sys, threading
    from app.core.native_memory import limit_malloc_arenas

    print(limit_malloc_arenas() if sys.argv[1] == "capped" else "uncapped")
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    all_in = threading.Barrier({threads} + 1)

    def allocate():
        libc.malloc(1024)  # a thread's first malloc picks its arena; kept, so none is handed back
        all_in.wait()  # every thread alive at once: none can inherit an exited thread's arena
        all_in.wait()

    threads = [threading.Thread(target=allocate) for _ in range({threads})]
    for t in threads:
        t.start()
    all_in.wait()
    out = libc.fopen(sys.argv[2].encode(), b"w")
    libc.malloc_info(0, out)
    libc.fclose(out)
    all_in.wait()
    for t in threads:
        t.join()
    """
).format(threads=THREADS)


def arenas(tmp_path: Path, mode: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    """(what the script printed, the number of malloc arenas once THREADS threads have allocated)."""
    info = tmp_path / f"{mode}.xml"
    done = subprocess.run(
        [sys.executable, "-c", ARENAS_SCRIPT, mode, str(info)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    return done.stdout.strip(), info.read_text().count("<heap nr=")


def test_the_cap_bounds_the_arenas_however_many_threads_allocate(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    _, uncapped = arenas(tmp_path, "uncapped", env)
    assert uncapped > 2  # the check can tell: without the cap, threads get arenas of their own
    printed, capped = arenas(tmp_path, "capped", env)
    assert printed == "True"
    assert capped <= 2


def test_an_operators_malloc_arena_max_stands(tmp_path: Path) -> None:
    printed, count = arenas(tmp_path, "capped", {**os.environ, "MALLOC_ARENA_MAX": "3"})
    assert printed == "False"
    assert count <= 3


def test_a_process_needs_an_arena() -> None:
    from app.core.native_memory import limit_malloc_arenas

    with pytest.raises(ValueError, match="at least one"):
        limit_malloc_arenas(0)


TRIM_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from app.core.native_memory import trim_periodically

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    blocks = [bytearray(4096) for _ in range(40_000)]  # 160 MiB from the heap (below the mmap threshold)
    kept = blocks[::64]  # scattered survivors: the heap's top cannot be trimmed by free()
    del blocks
    before = rss_mib()
    if sys.argv[1] == "trimmed":
        trim_periodically(0.05)
    time.sleep(0.5)
    print(before, rss_mib())
    """
)


def rss_before_and_after(mode: str) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", TRIM_SCRIPT, mode], capture_output=True, text=True, check=True, timeout=60
    )
    before, after = map(float, done.stdout.split())
    return before, after


def test_the_trimmer_hands_freed_heap_pages_back() -> None:
    before, after = rss_before_and_after("untrimmed")
    assert after > 0.9 * before > 100  # the check can tell: freed pages in the middle of the heap stay
    before, after = rss_before_and_after("trimmed")
    assert before > 100 and after < 0.5 * before
