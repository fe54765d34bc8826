"""Soak the app: `python app.py` on the shipped weights for --minutes, with a memory every --memory-every seconds and
two clients asking for faces and upscales meanwhile; every --sample seconds it records the app's resident memory,
its scratch size and the errors so far. Writes a JSON report (issue 28: 0 errors, scratch under its cap, memory flat
after the first 10 minutes).

    nice -n 5 python scripts/soak_app.py --minutes 30 --json docs/results/soak-app-cpu-YYYY-MM-DD.json

The photo is the model's own face for seed 1234 (already cropped: align off); memories use --steps / --tune-steps
(the app's defaults unless given) and 16 frames, so a slow machine still sends one a minute. A memory that takes
longer than the interval is still waited for: the next starts on time in its own client (the app queues it).
The report: per sample, minutes, RSS (MB), scratch (MB), memories started / done / failed, round trips / failures;
then totals, the RSS slope after minute 10 (MB per 10 minutes) and every error message (first 20).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from dgf_core.serving.scratch import folder_bytes  # noqa: E402  (skips files removed while it walks)


def rss_mb(pid: int) -> float:
    """The process's resident memory and that of its children (MB), from /proc."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        kids = [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def folder_mb(root: Path) -> float:
    return folder_bytes(root) / 2**20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="stylegan2-celeba64")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--memory-every", type=float, default=60, help="seconds between memories")
    p.add_argument("--sample", type=float, default=30, help="seconds between samples")
    p.add_argument("--steps", type=int, default=None, help="projection steps (default: the app's)")
    p.add_argument("--tune-steps", type=int, default=None, help="tuning steps (default: the model's)")
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)

    from gradio_client import Client, handle_file

    from dgf_core.checkpoint import resolve_model_path, write_json_atomic
    from dgf_core.evaluation.bench import app_server
    from dgf_core.generation.pipeline import FacePipeline
    from dgf_core.images import save_png, to_pil

    folder = resolve_model_path(a.model)
    tmp = Path(tempfile.mkdtemp(prefix="dgf-soak-"))
    photo, small = tmp / "photo.png", tmp / "small.png"
    pipe = FacePipeline.from_pretrained(folder, device="cpu")
    save_png(to_pil(pipe.generate([1234])[0]), photo)
    save_png(to_pil(pipe.generate([99])[0]), small)
    del pipe
    (tmp / "gradio").mkdir()
    (tmp / "scratch").mkdir()
    env = {"GRADIO_TEMP_DIR": str(tmp / "gradio"), "TMPDIR": str(tmp / "scratch")}
    cap_mb = float(os.environ.get("DGF_SCRATCH_MB", "256"))
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"memories_started": 0, "memories_done": 0, "memories_failed": 0, "round_trips": 0,
              "round_trip_failures": 0}
    errors: list[str] = []
    memory_seconds: list[float] = []

    def count(key: str, error: Exception | None = None) -> None:
        with lock:
            counts[key] += 1
            if error is not None:
                errors.append(f"{type(error).__name__}: {error}"[:300])

    with app_server(weights_dir=folder.parent, timeout=300, env=env, log=tmp / "app.log") as srv:
        def client(name: str) -> Client:
            return Client(srv.url, verbose=False, analytics_enabled=False, download_files=str(tmp / f"dl-{name}"))

        def one_memory(i: int) -> None:
            t0 = time.perf_counter()
            try:
                args = [handle_file(str(photo)), True, folder.name, a.steps or 200, False, 0.0, 0.0, 16, 12, True, "off",
                        a.tune_steps]
                client(f"m{i}").predict(*args, api_name="/project")
                count("memories_done")
                with lock:
                    memory_seconds.append(time.perf_counter() - t0)
            except Exception as e:  # counted and reported
                count("memories_failed", e)

        def round_trips(name: str) -> None:
            c = client(name)
            i = 0
            while not stop.is_set():
                try:
                    c.predict(20_000 + i, folder.name, 1.0, api_name="/generate")
                    c.predict(handle_file(str(small)), "x4", api_name="/upscale")
                    count("round_trips")
                except Exception as e:
                    count("round_trip_failures", e)
                i += 1
                stop.wait(2.0)

        workers = [threading.Thread(target=round_trips, args=(f"r{k}",), daemon=True) for k in range(2)]
        for t in workers:
            t.start()
        memories: list[threading.Thread] = []
        samples = []
        t_start = time.monotonic()
        next_memory = next_sample = t_start
        end = t_start + a.minutes * 60
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_memory:
                count("memories_started")
                th = threading.Thread(target=one_memory, args=(len(memories),), daemon=True)
                th.start()
                memories.append(th)
                next_memory += a.memory_every
            if now >= next_sample:
                with lock:
                    sample = {"minutes": round((now - t_start) / 60, 2), "rss_mb": round(rss_mb(srv.proc.pid), 1),
                              "scratch_mb": round(folder_mb(tmp / "scratch"), 1),
                              "gradio_cache_mb": round(folder_mb(tmp / "gradio"), 1), **counts}
                samples.append(sample)
                print(json.dumps(sample), flush=True)
                next_sample += a.sample
                if srv.proc.poll() is not None:
                    errors.append(f"app.py exited with {srv.proc.returncode}")
                    break
            time.sleep(0.5)
        stop.set()
        for th in memories:
            th.join(timeout=600)
        for t in workers:
            t.join(timeout=60)
        final = {"rss_mb": round(rss_mb(srv.proc.pid), 1), "scratch_mb": round(folder_mb(tmp / "scratch"), 1), **counts}
    late = [s for s in samples if s["minutes"] >= 10]
    slope = None
    if len(late) >= 3:
        xs, ys = [s["minutes"] for s in late], [s["rss_mb"] for s in late]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        slope = round(10 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs), 1)
    report = {"what": "app soak: scripts/soak_app.py", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "args": vars(a), "model": folder.name, "scratch_cap_mb": cap_mb, "final": final,
              "errors_total": counts["memories_failed"] + counts["round_trip_failures"],
              "memory_seconds_median": round(statistics.median(memory_seconds), 1) if memory_seconds else None,
              "scratch_max_mb": max((s["scratch_mb"] for s in samples), default=None),
              "rss_mb_max": max((s["rss_mb"] for s in samples), default=None),
              "rss_slope_mb_per_10_min_after_minute_10": slope, "errors": errors[:20], "samples": samples,
              "machine": {"cores": os.cpu_count()}}
    write_json_atomic(report, a.json)
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2))
    return 0 if report["errors_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
