"""What the launcher asks of the host: free TCP ports, and the python-backend shared memory
a server's process tree maps (Linux ``/proc``).

Stdlib only.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

__all__ = ["free_ports", "port_in_use", "process_tree", "shm_regions"]

# python-backend shared memory regions (one per model instance, in /dev/shm)
_SHM_REGION = re.compile(r"(/dev/shm/triton_python_backend_shm_region_[0-9a-f-]+)")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct TCP ports that were free a moment ago on ``host`` (for tests, demos)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on ``port`` of ``host`` (connections in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``; just ``[pid]`` elsewhere)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo += parents.get(current, [])
    return tree


def shm_regions(pid: int) -> set[str]:
    """Python-backend shared memory files mapped by ``pid`` or its children."""
    found: set[str] = set()
    for p in process_tree(pid):
        try:
            found.update(_SHM_REGION.findall(Path(f"/proc/{p}/maps").read_text()))
        except OSError:
            continue
    return found
