"""Slow work at a lower CPU priority than the requests that must stay fast: the app runs each memory (projection,
tuning, rendering, encoding) through `in_background`, so that on a CPU a /generate or an /upscale that arrives while
memories run gets the cores first.

On Linux a nice value belongs to a thread, not to the process: `os.setpriority(PRIO_PROCESS, tid, n)` with a
thread id changes that thread alone. Raising one's own nice value is always allowed, but lowering it back needs
CAP_SYS_NICE or a high enough RLIMIT_NICE, which an app on a Hugging Face Space (not root) does not have; and Gradio
reuses its worker threads, so a worker left niced would slow every later request it serves. Hence no "nice, then
restore" here: the work runs on a fresh thread made for it, which raises its own nice value, runs the work and
ends, so nothing is ever restored and the caller's thread (the Gradio worker) keeps its priority. The caller waits
for it and gets its result or its exception; context variables (Gradio's event, which its progress bar needs) are
carried over.

What the nice value reaches: the work thread, and what it forks (ffmpeg for the MP4 inherits it). torch's
intra-op threads do not: the memory runs with one intra-op thread by default (`ProjectionOptions.threads` and
`TuningOptions.threads` are 1), so its tensors are computed on the work thread itself; with more, torch's pool
threads (made by whichever thread first used them) keep their own priority. Elsewhere than Linux, or when the
nice value cannot be set, the work runs at normal priority on the same fresh thread, and this is logged at debug
level; a memory never fails because of it.
"""
from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
from typing import Any, Callable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_NICE = 10  # added to the caller's nice value (0..19 on Linux); the app's default, `DGF_MEMORY_NICE`


def thread_nice(tid: int | None = None) -> int | None:
    """The nice value of thread `tid` (native id; None: the calling thread); None where threads have none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, tid if tid is not None else threading.get_native_id())


def lower_this_thread(by: int) -> bool:
    """Raise the calling thread's nice value by `by` (at most to 19); whether it was done. Never raises."""
    if by <= 0:
        return False
    try:
        tid = threading.get_native_id()
        now = thread_nice(tid)
        if now is None:
            log.debug("no per-thread priority on %s: the work runs at normal priority", sys.platform)
            return False
        os.setpriority(os.PRIO_PROCESS, tid, min(now + by, 19))
        return True
    except (OSError, AttributeError) as e:  # no PRIO_PROCESS / get_native_id here, or refused: normal priority
        log.debug("could not lower the priority of thread %s: %s", threading.current_thread().name, e)
        return False


def in_background(fn: Callable[..., T], *args: Any, nice: int = DEFAULT_NICE, name: str = "background",
                  **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on a fresh thread whose nice value is `nice` above the caller's; wait for it and return
    its result, or raise its exception. `nice` 0: the same, at the caller's priority."""
    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def work() -> None:
        lower_this_thread(nice)
        try:
            outcome["result"] = context.run(fn, *args, **kwargs)
        except BaseException as e:  # handed to the caller, raised there
            outcome["error"] = e

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome.pop("error")
    return outcome["result"]
