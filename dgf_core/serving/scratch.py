"""Per-request scratch folders for servers: a unique folder per request, old ones swept, a size cap, all removed at exit.

A server (the Gradio app) writes each request's files (PNG, MP4, GIF, recipe) into its own folder, so two
users rendering at once never share a path. Gradio copies returned files into its own cache (which the app
ages out with `delete_cache`), so a request folder is only needed for a short while. Every `new()` first:
- removes folders older than `max_age_s`;
- when the folders hold more than `max_bytes`, removes the oldest (by modification time) until they fit, sparing
  those younger than `min_age_s` (a request that is still writing, or whose files Gradio has not copied yet).
The whole root goes when the process exits. A process killed with SIGKILL cannot do that, so the root records its
owner (`owner.json`: PID and the process's start time, which tells a reused PID apart) and a new `ScratchDirs` with
the same prefix removes the roots of owners that are gone, never one of a live process.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

OWNER_FILE = "owner.json"


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (Linux /proc), None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime
    except (OSError, IndexError):
        return None


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether `pid` runs and, when `started` is given and can be checked, is the process that started then."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    now = _process_start(pid)
    return started is None or now is None or now == started


def remove_stale(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the scratch roots `parent/prefix*` whose recorded owner process is gone; return them. Roots without an
    owner record (another program's, or an older version's) are left alone."""
    removed = []
    for root in Path(parent).glob(f"{prefix}*"):
        try:
            owner = json.loads((root / OWNER_FILE).read_text())
            pid, started = owner["pid"], owner.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid != os.getpid() and not process_alive(pid, started):
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


def folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


class ScratchDirs:
    def __init__(self, prefix: str = "dgf-", max_age_s: float = 600.0, max_bytes: int | None = None,
                 min_age_s: float = 60.0, parent: str | os.PathLike | None = None):
        parent = Path(parent) if parent else Path(tempfile.gettempdir())
        self.stale_removed = remove_stale(parent, prefix)
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        (self.root / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "started": _process_start(os.getpid())}))
        self.max_age_s, self.max_bytes, self.min_age_s = max_age_s, max_bytes, min_age_s
        self._lock = threading.Lock()
        atexit.register(self.cleanup)

    def new(self) -> Path:
        """A fresh, empty folder for one request."""
        self.sweep()
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.root))

    def folders(self) -> list[tuple[float, Path]]:
        """(modification time, folder) of the request folders, oldest first."""
        out = []
        for d in self.root.iterdir():
            try:
                if d.is_dir():
                    out.append((d.stat().st_mtime, d))
            except FileNotFoundError:  # another request swept it a moment ago
                pass
        return sorted(out)

    def sweep(self, now: float | None = None) -> int:
        """Remove request folders older than max_age_s, then the oldest ones past the size cap; return how many went."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            kept = []
            for mtime, d in self.folders():
                if now - mtime > self.max_age_s:
                    shutil.rmtree(d, ignore_errors=True)
                    removed += 1
                else:
                    kept.append((mtime, d))
            if self.max_bytes is not None:
                sizes = [(mtime, d, folder_bytes(d)) for mtime, d in kept]
                total = sum(s for _, _, s in sizes)
                for mtime, d, size in sizes:  # oldest first
                    if total <= self.max_bytes or now - mtime < self.min_age_s:
                        break
                    shutil.rmtree(d, ignore_errors=True)
                    total -= size
                    removed += 1
        return removed

    def total_bytes(self) -> int:
        return folder_bytes(self.root)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
