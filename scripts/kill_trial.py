"""Kill a training run with SIGKILL again and again, resume it each time with the same command, and check that it
ends exactly where an uninterrupted run ends. Writes a JSON report.

    python scripts/kill_trial.py --kills 20 --out docs/results/kill-trial.json

The run: `python -m dgf_core train dcgan --resume ...` on a synthetic folder of 64 random 16 px faces (made here),
a small DCGAN (channels 32), batch 8, a state every 3 steps. Each piece is started with the same command (--resume
starts the run when there is no state yet) and killed:
- at a random moment (uniformly 2-30 s after start: during start-up, training or a write), or
- during a checkpoint write: the run folder is polled and the process killed as soon as a temporary file of a
  state write (`.state.safetensors.*`, safetensors' `.tmpXXXXXX`) appears.
After each kill the next piece must start at the step of the saved state, leave no temporary file, and log each
step once; after the last piece has finished, the state must equal that of an uninterrupted run, tensor for tensor.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def faces(root: Path, n: int = 64) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "faces").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "faces" / f"{i:06d}.png")
    return root / "faces"


def command(data: Path, out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "dgf_core", "train", "dcgan", "--data", str(data), "--out", str(out), "--resolution",
            "16", "--batch-size", "8", "--steps", str(steps), "--checkpoint-every", "3", "--log-every", "1",
            "--sample-every", "1000", "--no-progress", "--device", "cpu", "--threads", "1", "--no-amp",
            "--model", "g_channels=32", "--model", "d_channels=32", "--model", "z_dim=32", "--resume"]


def in_write(name: str) -> bool:
    return name.startswith(".state.safetensors.") or (name.startswith(".tmp") and len(name) == 10)


def saved_step(out: Path) -> int:
    from dgf_core.checkpoint import read_training_info

    state = out / "state.safetensors"
    return read_training_info(state)["step"] if state.exists() else 0


def start_records(out: Path) -> list[dict]:
    if not (out / "log.jsonl").exists():
        return []
    return [r for r in (json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()) if r.get("kind") == "start"]


def check_folder(out: Path) -> dict:
    from dgf_core.checkpoint import PARTIAL_WRITE

    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()] if (out / "log.jsonl").exists() else []
    steps = [r["step"] for r in log if "kind" not in r]
    leftovers = [p.name for p in out.iterdir() if PARTIAL_WRITE.match(p.name)] if out.exists() else []
    return {"steps_logged": len(steps), "duplicates": len(steps) - len(set(steps)),
            "in_order": steps == sorted(steps), "leftovers": leftovers}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON report")
    a = p.parse_args()
    rng = random.Random(a.seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="dgf-kill-") as tmp:
        tmp = Path(tmp)
        data, out = faces(tmp), tmp / "run"
        pieces = []
        for k in range(a.kills):
            during_write = k % 2 == 1
            before = saved_step(out)
            stale = set(os.listdir(out)) if out.exists() else set()  # leftovers of the last kill: not a write of this piece
            starts_before = len(start_records(out))
            proc = subprocess.Popen(command(data, out, a.steps), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            t0 = time.monotonic()
            deadline = t0 + (60.0 if during_write else rng.uniform(2.0, 30.0))
            seen = None
            while proc.poll() is None and time.monotonic() < deadline:
                if during_write and out.exists():
                    seen = next((n for n in os.listdir(out) if in_write(n) and n not in stale), None)
                    if seen:
                        break
                else:
                    time.sleep(0.01)
            finished = proc.poll() is not None
            if not finished:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stderr = proc.stderr.read()
            after = saved_step(out)
            starts = start_records(out)
            first_logged = starts[-1]["step"] if len(starts) > starts_before else None  # None: killed before it logged
            pieces.append({"piece": k, "kind": "during a write" if during_write else "random",
                           "killed_after_s": round(time.monotonic() - t0, 2), "write_file_seen": seen,
                           "finished_before_kill": finished, "returncode": proc.returncode,
                           "state_step_before": before, "piece_started_at": first_logged, "state_step_after": after,
                           "leftovers_after_kill": check_folder(out)["leftovers"] if out.exists() else [],
                           "error": stderr[-500:] if proc.returncode not in (0, -9) else None})
            print(json.dumps(pieces[-1]), flush=True)
            if finished:
                break
        final = subprocess.run(command(data, out, a.steps), cwd=ROOT, env=env, capture_output=True, text=True)
        folder = check_folder(out)
        reference = tmp / "reference"
        ref = subprocess.run(command(data, reference, a.steps), cwd=ROOT, env=env, capture_output=True, text=True)
        import torch
        from safetensors.torch import load_file

        x, y = load_file(str(out / "state.safetensors")), load_file(str(reference / "state.safetensors"))
        equal = x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        # a piece started after a kill must start at the step its predecessor had saved (a started piece logs "start")
        starts_ok = all(p["piece_started_at"] in (None, p["state_step_before"]) for p in pieces)
        report = {
            "kills": sum(1 for p in pieces if p["returncode"] == -9),
            "kills_during_writes": sum(1 for p in pieces if p["returncode"] == -9 and p["write_file_seen"]),
            "leftovers_seen_after_kills": sum(1 for p in pieces if p["leftovers_after_kill"]),
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
