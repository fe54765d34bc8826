"""Add coverage (share of women, mean age) to a training run's eval records that were written without it.

    nice -n 19 python scripts/add_snapshot_coverage.py ~/dgf-runs/sg2-d3 [--data FOLDER ...]

The trainer logs coverage with every snapshot since 2026-12-03; for older snapshots this samples each one's
evaluation seeds (0..n_seeds-1, as the trainer did, from the snapshot's fp16 weights), labels them with the shipped
attribute classifier beside the run's training faces (`training.loop.snapshot_coverage`) and appends one
{"kind": "eval", "step", "coverage"} line per snapshot to RUN/log.jsonl, which `python -m dgf_core curves` merges
with the trainer's record of that step. Safe beside a live run: whole lines, appended and flushed one at a time.
Records that have coverage, or whose snapshot folder is gone, are left alone (and listed).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/add_snapshot_coverage.py from anywhere
from dgf_core.checkpoint import CheckpointError, load_model  # noqa: E402
from dgf_core.data import load_image_set, to_uint8  # noqa: E402
from dgf_core.evaluation.curves import read_run  # noqa: E402
from dgf_core.latent import seeds_to_z  # noqa: E402
from dgf_core.training.loop import LOG_FILE, snapshot_coverage  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="training run folder (holds log.jsonl and snapshots/)")
    ap.add_argument("--data", action="append", help="training image folder(s) (default: the run's own, from its log)")
    ap.add_argument("--cache-dir", help="decoded-data cache (default: the run's own)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run).expanduser()
    log = read_run(run_dir)
    if not log.starts:
        ap.error(f"{run_dir / LOG_FILE} has no start record: cannot tell the run's data and resolution")
    options = log.starts[-1].get("options", {})
    todo = [e for e in log.evals if "coverage" not in e and e.get("snapshot")]
    missing = [e for e in todo if not (run_dir / e["snapshot"]).is_dir()]
    todo = [e for e in todo if e not in missing]
    for e in missing:
        print(f"step {e['step']}: snapshot {e['snapshot']} is gone; skipped", file=sys.stderr)
    if not todo:
        print(f"{run_dir}: every eval record with a snapshot has coverage; nothing to add")
        return 0
    data = args.data or options["data"]
    train_set = load_image_set(data, options.get("resolution", 64), "train", cache_dir=args.cache_dir or options.get("cache_dir"))
    run = SimpleNamespace(data=train_set, attributes=None, training_profile=None)
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as f:
        for e in todo:
            try:
                model = load_model(run_dir / e["snapshot"])
            except CheckpointError as err:
                print(f"step {e['step']}: {err}; skipped", file=sys.stderr)
                continue
            g = model.generator.float().eval()
            n = int(e.get("n_seeds") or options.get("eval_seeds", 256))
            with torch.no_grad():
                z = seeds_to_z(range(n), model.config.z_dim)
                imgs = torch.cat([to_uint8(g(z[i : i + 64])) for i in range(0, n, 64)])
            cov = snapshot_coverage(run, imgs)
            if "coverage_error" in cov:
                print(cov["coverage_error"], file=sys.stderr)
                return 1
            rec = {"kind": "eval", "step": e["step"], "images_seen": e.get("images_seen"), **cov,
                   "coverage_note": f"added later from {e['snapshot']} (fp16 weights) by scripts/add_snapshot_coverage.py"}
            f.write(json.dumps(rec) + "\n")
            f.flush()
            c = cov["coverage"]
            print(f"step {e['step']} ({e.get('images_seen')} images): women {c['female_share']:.3f} "
                  f"(training {c['training_female_share']:.3f}), mean age {c['age_mean']:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
