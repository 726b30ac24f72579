"""Which network addresses a process tree uses: a thread samples the ``inet`` sockets (TCP and UDP,
listening or connected) of this process and every descendant, and records any socket whose local
or peer address is not loopback. Tests that start clusters or servers use it to prove that they
talk over 127.0.0.1 only (a wildcard listen address such as 0.0.0.0 counts as not loopback).
"""

from __future__ import annotations

import ipaddress
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import psutil


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _tree() -> dict[int, str]:
    """pid → command line of this process and all its descendants."""
    me = psutil.Process(os.getpid())
    tree = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            tree[process.pid] = " ".join(process.cmdline())[:160]
        except psutil.Error:  # ended between the listing and the read
            continue
    return tree


@dataclass
class SocketWatch:
    """Samples every ``interval`` seconds between ``start`` and ``stop``."""

    interval: float = 0.2
    offending: dict[tuple[Any, ...], str] = field(default_factory=dict)
    loopback_seen: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SocketWatch:
        self._thread = threading.Thread(target=self._run, name="socket-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def sample(self) -> None:
        tree = _tree()
        for conn in psutil.net_connections("inet"):
            if conn.pid not in tree:
                continue
            addresses = [conn.laddr, *([conn.raddr] if conn.raddr else [])]
            if all(is_loopback(a.ip) for a in addresses):
                self.loopback_seen += 1
                continue
            key = (conn.type.name, conn.status, conn.laddr, conn.raddr)
            self.offending.setdefault(key, f"pid {conn.pid}: {tree[conn.pid]}")
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def report(self) -> str:
        return "\n".join(
            f"{kind} {status} {laddr} -> {raddr or '-'} ({who})"
            for (kind, status, laddr, raddr), who in self.offending.items()
        )
