"""Per-request scratch folders for servers: a unique folder per request, old ones swept, all removed at exit.

A server (the Gradio app) writes each request's files (PNG, MP4, GIF, recipe) into its own folder, so two
users rendering at once never share a path. Gradio copies returned files into its own cache (which the app
ages out with `delete_cache`), so a request folder is only needed for a short while: every `new()` first
removes folders older than `max_age_s`, and the whole root goes when the process exits.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
import time
from pathlib import Path


class ScratchDirs:
    def __init__(self, prefix: str = "dgf-", max_age_s: float = 600.0):
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.max_age_s = max_age_s
        atexit.register(self.cleanup)

    def new(self) -> Path:
        """A fresh, empty folder for one request."""
        self.sweep()
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.root))

    def sweep(self, now: float | None = None) -> int:
        """Remove request folders older than max_age_s; return how many went."""
        now = time.time() if now is None else now
        removed = 0
        for d in self.root.iterdir():
            try:
                old = now - d.stat().st_mtime > self.max_age_s
            except FileNotFoundError:  # another request swept it a moment ago
                continue
            if old:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
