"""What listens where on this machine, read from Linux's /proc: for tests of which address a server binds."""

from __future__ import annotations

import socket
from pathlib import Path


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses a TCP socket listens on at ``port`` (``/proc/net/tcp``)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found
