"""Score a training run's snapshots again with today's in-run evaluation: coverage where a record has none, and the
two-sample test at today's size where the record's was smaller.

    nice -n 19 python scripts/rescore_snapshots.py ~/dgf-runs/sg2-d3 [--every 2] [--data FOLDER ...]

The trainer logs coverage with every snapshot since 2026-12-03, and since 2026-12-04 its C2ST tests 1,000 samples
against every held-out face (`training.loop.EVAL_C2ST_SAMPLES`, as `evaluate --n 1000` does; before, the 256
face-rate seeds against 256 held-out faces, a test that reads lower and missed a rise from 0.60 to 0.89 that
`evaluate` saw). For older snapshots this samples the snapshot's seeds (from its fp16 weights), scores them with the
trainer's own functions (`snapshot_coverage`, `snapshot_c2st`) and appends one {"kind": "eval", "step", ...} line
per snapshot to RUN/log.jsonl, which `python -m dgf_core curves` merges with the trainer's record of that step (the
later, larger test replaces the smaller one; the curves draw tests of different sizes as separate lines). Safe
beside a live run: whole lines, appended and flushed one at a time. Records that need nothing, or whose snapshot
folder is gone, are left alone (and listed); --every K rescoring every K-th snapshot only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # python scripts/rescore_snapshots.py from anywhere
from dgf_core.checkpoint import CheckpointError, load_model  # noqa: E402
from dgf_core.data import load_image_set  # noqa: E402
from dgf_core.evaluation.curves import read_run  # noqa: E402
from dgf_core.training.loop import (  # noqa: E402
    EVAL_C2ST_SAMPLES,
    LOG_FILE,
    heldout_faces,
    sample_seeds,
    snapshot_c2st,
    snapshot_coverage,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="training run folder (holds log.jsonl and snapshots/)")
    ap.add_argument("--data", action="append", help="training image folder(s) (default: the run's own, from its log)")
    ap.add_argument("--cache-dir", help="decoded-data cache (default: the run's own)")
    ap.add_argument("--c2st-samples", type=int, default=EVAL_C2ST_SAMPLES,
                    help=f"samples in the two-sample test (default {EVAL_C2ST_SAMPLES}, the trainer's; 0: coverage only)")
    ap.add_argument("--every", type=int, default=1, metavar="K", help="rescore every K-th snapshot (default: all)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.every < 1 or args.c2st_samples < 0:
        ap.error("--every must be at least 1 and --c2st-samples at least 0")
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run).expanduser()
    log = read_run(run_dir)
    if not log.starts:
        ap.error(f"{run_dir / LOG_FILE} has no start record: cannot tell the run's data and resolution")
    options = log.starts[-1].get("options", {})
    data = args.data or options["data"]
    resolution, cache_dir = options.get("resolution", 64), args.cache_dir or options.get("cache_dir")
    run = SimpleNamespace(data=load_image_set(data, resolution, "train", cache_dir=cache_dir), attributes=None,
                          training_profile=None, heldout=None,
                          opts=SimpleNamespace(data=data, resolution=resolution, cache_dir=cache_dir,
                                               seed=options.get("seed", 0)))
    n_c2st = 0
    if args.c2st_samples:
        n_c2st = min(args.c2st_samples, len(heldout_faces(run)))

    def needs(e: dict) -> list[str]:
        c2st = e.get("c2st") if isinstance(e.get("c2st"), dict) else {}
        return ((["coverage"] if "coverage" not in e else [])
                + (["c2st"] if n_c2st and (c2st.get("n_per_class") or 0) < n_c2st else []))

    with_snapshots = [e for e in log.evals if e.get("snapshot")][:: args.every]
    todo = [e for e in with_snapshots if needs(e)]
    missing = [e for e in todo if not (run_dir / e["snapshot"]).is_dir()]
    todo = [e for e in todo if e not in missing]
    for e in missing:
        print(f"step {e['step']}: snapshot {e['snapshot']} is gone; skipped", file=sys.stderr)
    if not todo:
        print(f"{run_dir}: every eval record with a snapshot has coverage and a {n_c2st}-per-class C2ST; nothing to add")
        return 0
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as f:
        for e in todo:
            try:
                model = load_model(run_dir / e["snapshot"])
            except CheckpointError as err:
                print(f"step {e['step']}: {err}; skipped", file=sys.stderr)
                continue
            what = needs(e)
            n_seeds = int(e.get("n_seeds") or options.get("eval_seeds", 256))
            imgs = sample_seeds(model.generator.float().eval(), model.config.z_dim,
                                max(n_seeds, args.c2st_samples if "c2st" in what else 0))
            rec: dict = {"kind": "eval", "step": e["step"], "images_seen": e.get("images_seen")}
            if "coverage" in what:
                cov = snapshot_coverage(run, imgs[:n_seeds])
                if "coverage_error" in cov:
                    print(cov["coverage_error"], file=sys.stderr)
                    return 1
                rec.update(cov)
            if "c2st" in what:
                rec.update(snapshot_c2st(run, imgs[: args.c2st_samples]))
            rec["rescore_note"] = f"added later from {e['snapshot']} (fp16 weights) by scripts/rescore_snapshots.py"
            f.write(json.dumps(rec) + "\n")
            f.flush()
            said = [f"women {rec['coverage']['female_share']:.3f} (training {rec['coverage']['training_female_share']:.3f})"
                    if "coverage" in rec else "",
                    f"C2ST {rec['c2st']['accuracy']:.3f} ({rec['c2st']['n_per_class']} per class)" if "c2st" in rec else ""]
            print(f"step {e['step']} ({e.get('images_seen')} images): " + ", ".join(s for s in said if s), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
