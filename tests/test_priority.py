"""dgf_core.serving.priority: a memory's work runs on a thread of its own at a higher nice value; the caller's
thread (a Gradio worker, reused for fast requests) keeps its priority, and a refused priority change never fails."""
import contextvars
import os
import sys
import threading

import pytest

from dgf_core.serving import priority

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def _seen() -> dict:
    """What the work thread sees of itself."""
    tid = threading.get_native_id()
    return {"tid": tid, "nice": os.getpriority(os.PRIO_PROCESS, tid), "thread": threading.current_thread()}


@linux
def test_the_work_runs_niced_on_its_own_thread_and_the_caller_keeps_its_priority():
    me = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, me)
    if before > 19 - 5:
        pytest.skip("the test process is already niced too far to see a change")
    seen = priority.in_background(_seen, nice=5)
    assert seen["tid"] != me and seen["nice"] == before + 5  # niced while inside
    assert os.getpriority(os.PRIO_PROCESS, me) == before  # the caller untouched, during and after
    assert not seen["thread"].is_alive()  # the niced thread is gone: nothing left to restore
    assert priority.in_background(_seen, nice=0)["nice"] == before


def test_results_exceptions_and_context_variables_reach_the_caller():
    var = contextvars.ContextVar("event")
    var.set("event-1")
    assert priority.in_background(lambda x, y=0: (x + y, var.get()), 2, y=3) == (5, "event-1")

    def fail():
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        priority.in_background(fail)


@linux
def test_a_refused_priority_change_runs_the_work_at_normal_priority(monkeypatch):
    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    monkeypatch.setattr(priority.os, "setpriority", refuse)
    assert priority.lower_this_thread(5) is False
    assert priority.in_background(_seen, nice=5)["nice"] == before
