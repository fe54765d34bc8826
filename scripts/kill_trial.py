"""Kill a training run with SIGKILL again and again, resume it each time with the same command, and check that it
ends exactly where an uninterrupted run ends. Writes a JSON report.

    python scripts/kill_trial.py --kills 20 --out docs/results/kill-trial.json

The run: `python -m dgf_core train dcgan --resume ...` on a synthetic folder of 64 random 16 px faces (made here),
a small DCGAN (channels 32), batch 8, a state every 2 steps (`--checkpoint-every`). The uninterrupted reference run
goes first; its log gives the seconds a step takes. Then each piece is started with the same command (--resume
starts the run when there is no state yet), waited for until it has logged its start record (start-up done,
training begins), and killed, in turn:
- at a random moment of training: after a delay drawn uniformly from 0 to `--window-steps` steps' time, so the kill
  lands in a step, between writes or in a write, wherever the clock says;
- during a state write: the run folder is polled every millisecond and the process killed as soon as a new temporary
  file of a state write (ours, `.state.safetensors.XXXXXXXX.tmp.safetensors`, or safetensors' own `.tmpXXXXXX`)
  appears, at the 1st, 2nd or 3rd write of the piece (drawn), and half of the time only once safetensors' own file
  shows, i.e. with the tensors half written. A piece runs until its write is caught (`--write-timeout`; a write never
  seen is reported as a miss).
A kill "caught a write" when a temporary file of that piece is still on disk after the kill. After each kill the next
piece must start at the step of the saved state, leave no temporary file, and log each step once; after the last
piece has finished, the state must equal that of the uninterrupted run, tensor for tensor.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START = b'"kind": "start"'
SAFETENSORS_TMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")  # what save_file writes before its rename (checkpoint.PARTIAL_WRITE)


def faces(root: Path, n: int = 64) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "faces").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "faces" / f"{i:06d}.png")
    return root / "faces"


def command(data: Path, out: Path, steps: int, checkpoint_every: int = 2) -> list[str]:
    return [sys.executable, "-m", "dgf_core", "train", "dcgan", "--data", str(data), "--out", str(out), "--resolution",
            "16", "--batch-size", "8", "--steps", str(steps), "--checkpoint-every", str(checkpoint_every),
            "--log-every", "1", "--sample-every", "100000", "--no-progress", "--device", "cpu", "--threads", "1",
            "--no-amp", "--model", "g_channels=32", "--model", "d_channels=32", "--model", "z_dim=32", "--resume"]


def in_write(name: str) -> str | None:
    """Whose temporary file of a state write `name` is: "ours", "safetensors" or None (not one)."""
    if name.startswith(".state.safetensors.") and name.endswith(".tmp.safetensors"):
        return "ours"
    if SAFETENSORS_TMP.match(name):
        return "safetensors"
    return None


def random_delay(rng: random.Random, seconds_per_step: float, window_steps: float) -> float:
    """Seconds from a piece's start record to its kill: uniform over `window_steps` steps of training."""
    return rng.uniform(0.0, window_steps * seconds_per_step)


def saved_step(out: Path) -> int:
    from dgf_core.checkpoint import read_training_info

    state = out / "state.safetensors"
    return read_training_info(state)["step"] if state.exists() else 0


def log_bytes(out: Path) -> bytes:
    try:
        return (out / "log.jsonl").read_bytes()
    except FileNotFoundError:
        return b""


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in log_bytes(out).decode().splitlines() if line.strip()]


def since_start(out: Path, n: int) -> list[dict]:
    """The records after the `n`-th start record (1-based): what the piece that wrote it logged."""
    recs, seen = records(out), 0
    for i, r in enumerate(recs):
        seen += r.get("kind") == "start"
        if seen == n:
            return recs[i:]
    return []


def write_files(out: Path, stale: set[str]) -> list[str]:
    return sorted(n for n in os.listdir(out) if in_write(n) and n not in stale) if out.exists() else []


def check_folder(out: Path) -> dict:
    from dgf_core.checkpoint import PARTIAL_WRITE

    steps = [r["step"] for r in records(out) if "kind" not in r]
    leftovers = [p.name for p in out.iterdir() if PARTIAL_WRITE.match(p.name)] if out.exists() else []
    return {"steps_logged": len(steps), "duplicates": len(steps) - len(set(steps)),
            "in_order": steps == sorted(steps), "leftovers": leftovers}


def wait_for_start(proc: subprocess.Popen, out: Path, starts: int, timeout: float) -> float | None:
    """Poll until the piece has logged its start record (the `starts`-th); the time it appeared, or None."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if log_bytes(out).count(START) >= starts:
            return time.monotonic()
        time.sleep(0.005)
    return None


def reference_run(cmd: list[str], out: Path, env: dict, steps: int) -> tuple[subprocess.CompletedProcess, float]:
    """The uninterrupted run, and the seconds per training step (writes included) its log's arrival times give."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = last = None
    size = 0
    while proc.poll() is None:
        data = log_bytes(out)
        if len(data) != size:
            size = len(data)
            n = sum(1 for line in data.splitlines() if line.startswith(b'{"step"'))
            now = time.monotonic()
            if n and first is None:
                first = (now, n)
            if n:
                last = (now, n)
        time.sleep(0.01)
    err = proc.stderr.read()
    per_step = (last[0] - first[0]) / max(last[1] - first[1], 1) if first and last else float("nan")
    return subprocess.CompletedProcess(cmd, proc.returncode, "", err), per_step


def kill_piece(proc: subprocess.Popen, out: Path, stale: set[str], kind: str, rng: random.Random,
               per_step: float, a: argparse.Namespace) -> dict:
    """Kill one started piece as its `kind` says; what was aimed at and seen."""
    if kind == "random":
        delay = random_delay(rng, per_step, a.window_steps)
        deadline = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(min(0.005, max(deadline - time.monotonic(), 0)))
        seen = write_files(out, stale)
        aim = {"delay_after_start_s": round(delay, 3), "delay_in_steps": round(delay / per_step, 2)}
    else:
        nth, want = rng.randint(1, 3), rng.choice(["any", "safetensors"])
        deadline, names, seen = time.monotonic() + a.write_timeout, set(), []
        while proc.poll() is None and time.monotonic() < deadline:
            now = write_files(out, stale)
            names.update(n for n in now if in_write(n) == "ours")  # one per write
            if len(names) >= nth and any(want == "any" or in_write(n) == want for n in now):
                seen = now
                break
            time.sleep(0.001)
        aim = {"at_write": nth, "waited_for": "any temporary file" if want == "any" else "safetensors' own file",
               "writes_seen_before_kill": len(names)}
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = write_files(out, stale)
    return {**aim, "write_file_seen": seen or None, "caught_a_write": bool(left), "write_files_left": left,
            "finished_before_kill": finished}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--checkpoint-every", type=int, default=2)
    p.add_argument("--window-steps", type=float, default=16.0,
                   help="a random kill lands uniformly within this many steps' time after the piece's start record")
    p.add_argument("--write-timeout", type=float, default=300.0, help="seconds a piece may run without a write caught")
    p.add_argument("--start-timeout", type=float, default=600.0, help="seconds a piece may take to start training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON report")
    a = p.parse_args()
    rng = random.Random(a.seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="dgf-kill-") as tmp:
        tmp = Path(tmp)
        data, out, reference = faces(tmp), tmp / "run", tmp / "reference"
        ref, per_step = reference_run(command(data, reference, a.steps, a.checkpoint_every), reference, env, a.steps)
        print(f"reference run: rc {ref.returncode}, {per_step * 1000:.0f} ms a step", flush=True)
        pieces = []
        for k in range(a.kills):
            kind = "during a write" if k % 2 == 1 else "random"
            before = saved_step(out)
            stale = set(os.listdir(out)) if out.exists() else set()  # leftovers of the last kill: not this piece's
            starts = log_bytes(out).count(START) + 1
            proc = subprocess.Popen(command(data, out, a.steps, a.checkpoint_every), cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            t0 = time.monotonic()
            started = wait_for_start(proc, out, starts, a.start_timeout)
            if started is None:
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                result = {"write_file_seen": None, "caught_a_write": False, "write_files_left": [],
                          "finished_before_kill": False, "not_started": True}
            else:
                result = kill_piece(proc, out, stale, kind, rng, per_step, a)
            stderr = proc.stderr.read()
            logged = since_start(out, starts)
            steps = [r["step"] for r in logged if "kind" not in r]
            pieces.append({"piece": k, "kind": kind, **result,
                           "start_up_s": round(started - t0, 2) if started else None,
                           "killed_after_s": round(time.monotonic() - t0, 2), "returncode": proc.returncode,
                           "state_step_before": before,
                           "piece_started_at": logged[0]["step"] if logged else None,
                           "last_step_logged_at_kill": steps[-1] if steps else None,
                           "state_step_after": saved_step(out), "error": stderr[-500:] if proc.returncode not in (0, -9) else None})
            print(json.dumps(pieces[-1]), flush=True)
            if result["finished_before_kill"]:
                break
        final = subprocess.run(command(data, out, a.steps, a.checkpoint_every), cwd=ROOT, env=env,
                               capture_output=True, text=True)
        folder = check_folder(out)
        import torch
        from safetensors.torch import load_file

        x, y = load_file(str(out / "state.safetensors")), load_file(str(reference / "state.safetensors"))
        equal = x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        # a piece started after a kill must start at the step its predecessor had saved
        starts_ok = all(p["piece_started_at"] == p["state_step_before"] for p in pieces)
        killed = [p for p in pieces if p["returncode"] == -9]
        writes = [p for p in killed if p["kind"] == "during a write"]
        randoms = [p for p in killed if p["kind"] == "random"]
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "options": {"steps": a.steps, "checkpoint_every": a.checkpoint_every, "window_steps": a.window_steps,
                        "write_timeout_s": a.write_timeout, "seed": a.seed},
            "seconds_per_step": round(per_step, 4),
            "kills": len(killed),
            "kills_aimed_at_writes": len(writes),
            "kills_during_writes": sum(p["caught_a_write"] for p in writes),
            "writes_missed": len(writes) - sum(p["caught_a_write"] for p in writes),
            "random_kills_in_training": sum(p["piece_started_at"] is not None for p in randoms),
            "random_kills_that_landed_in_a_write": sum(p["caught_a_write"] for p in randoms),
            "pieces_that_finished_before_their_kill": sum(p["finished_before_kill"] for p in pieces),
            "errors": [p["error"] for p in pieces if p["error"]] + ([final.stderr[-500:]] if final.returncode else [])
                      + ([ref.stderr[-500:]] if ref.returncode else []),
            "final": {**folder, "steps": a.steps, "state_equals_uninterrupted": equal,
                      "every_piece_started_at_the_saved_step": starts_ok},
            "pieces": pieces,
            "ok": (equal and starts_ok and folder["duplicates"] == 0 and folder["steps_logged"] == a.steps
                   and folder["in_order"] and not folder["leftovers"] and final.returncode == 0),
        }
    print(json.dumps({k: v for k, v in report.items() if k != "pieces"}, indent=2))
    if a.out:
        from dgf_core.checkpoint import write_json_atomic

        write_json_atomic(report, a.out)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
