"""Atomic file writes: every output is written under a temporary name beside it and renamed when complete.

A killed or failed job then never leaves a file that looks finished (Snakemake, a resumed training run or a
re-download would otherwise trust it). One helper for every writer in the package.

The temporary name is `.{name}.tmp-{host}-{pid}`: hidden (no glob, wildcard or video discovery takes it for an output)
and owned. A job killed with SIGKILL cannot delete it, so `sweep_stale_temporaries` (run at workflow start) removes
the ones whose process is gone: on this host when the pid no longer runs; from another host (a cluster node, whose
processes cannot be checked from here) only when untouched for `OTHER_HOST_STALE_S`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

OTHER_HOST_STALE_S = 24 * 3600.0
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?:(?P<host>[A-Za-z0-9.-]*)-)?(?P<pid>\d+)$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def temporary_path(path: str | Path, pid: int | None = None) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{_host()}-{os.getpid() if pid is None else pid}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it to `path` on success, delete it on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_temporaries(root: str | Path, now: float | None = None) -> list[Path]:
    """Delete the temporary files under `root` left by dead processes (see the module docstring); returns them."""
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    here = _host()
    removed: list[Path] = []
    for path in root.rglob(".*.tmp-*"):
        m = _TMP_RE.match(path.name)
        if not m or not path.is_file():
            continue
        host, pid = m.group("host"), int(m.group("pid"))
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:  # its writer just finished or failed
            continue
        local = host is None or host == here
        if (local and not _pid_running(pid)) or (not local and age > OTHER_HOST_STALE_S):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
