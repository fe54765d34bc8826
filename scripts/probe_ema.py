"""How much a StyleGAN2's weight averaging buys in the classifier two-sample test: C2ST accuracy (as `evaluate`
measures it) of a run's raw generator G and of its EMA generator G_ema, both from the run state at the same step,
and of the uniform average of several snapshot generators (checkpoint averaging: a longer, flatter average than
the EMA). If the average of snapshots scores no better than the snapshots themselves, a longer EMA would not help
either: the generator is still improving faster than averaging removes noise.

    python scripts/probe_ema.py --run ~/dgf-runs/sg2-e --average kimg000256,kimg000288,kimg000320,kimg000352 \
        --real ../shared/data/celeba/img_align_celeba --real ../shared/data/celeba/img_align_celeba_89x109 \
        --json docs/results/ema-probe.json

Safe beside the live run: it reads the state file (written atomically) and the snapshots, and writes only --json.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dgf_core.checkpoint import load_model, load_training_state  # noqa: E402
from dgf_core.data import load_image_set  # noqa: E402
from dgf_core.training.loop import STATE_FILE, export_generator, sample_seeds  # noqa: E402
from dgf_core.training.two_sample import c2st  # noqa: E402


def from_state(template: torch.nn.Module, path: Path) -> tuple[dict[str, torch.nn.Module], dict]:
    """The run state's G and G_ema in `template`'s architecture (a generator of the run's), each exported as a run
    exports its snapshots (truncation centre re-estimated); and the state's info."""
    nets = {name: copy.deepcopy(template).float() for name in ("G", "G_ema")}
    info = load_training_state(path, nets, {})
    return {name: export_generator(g, g.z_dim, torch.device("cpu"), 0) for name, g in nets.items()}, info


def averaged(gens: list[torch.nn.Module]) -> torch.nn.Module:
    """The uniform average of the generators' weights (buffers from the last), exported; the inputs are unchanged."""
    sds = [g.state_dict() for g in gens]
    g = copy.deepcopy(gens[-1])
    g.load_state_dict({k: sum(sd[k] for sd in sds) / len(sds) if v.is_floating_point() else v
                       for k, v in sds[-1].items()})
    return export_generator(g, g.z_dim, torch.device("cpu"), 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="a training run folder (its state file and snapshots/)")
    ap.add_argument("--average", default="", help="comma-separated snapshot names (under RUN/snapshots) to average")
    ap.add_argument("--real", action="append", required=True, help="real face folder(s); their held-out split is used")
    ap.add_argument("--n", type=int, default=1000, help="samples per generator (seeds 0..n-1), as evaluate --n")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = Path(args.run).expanduser()
    snaps = sorted((run / "snapshots").iterdir())
    if not snaps:
        ap.error(f"{run}/snapshots is empty: the run has not evaluated yet")
    template = load_model(snaps[-1]).generator.float()  # the run's architecture
    nets, info = from_state(template, run / STATE_FILE)
    real = load_image_set(args.real, template.cfg.resolution, "heldout", cache_dir=args.cache_dir).images[: args.n]
    candidates = {f"G (raw, step {info['step']})": nets["G"], f"G_ema (step {info['step']})": nets["G_ema"]}
    snapshots = {n: load_model(run / "snapshots" / n).generator.float() for n in args.average.split(",") if n}
    candidates.update({f"snapshot {name}": g for name, g in snapshots.items()})
    if snapshots:
        candidates["average of " + "+".join(snapshots)] = averaged(list(snapshots.values()))
    results = {}
    for label, g in candidates.items():
        t0 = time.perf_counter()
        g.eval()
        s = sample_seeds(g, g.z_dim, args.n)
        r = c2st(s, real)
        results[label] = {"accuracy": round(float(r["accuracy"]), 4), "stderr": round(float(r["stderr"]), 4),
                          "n_per_class": int(r["n_per_class"]), "seconds": round(time.perf_counter() - t0, 1)}
        print(label, json.dumps(results[label]), flush=True)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "python " + " ".join(sys.argv),
              "run": str(run), "state_step": info["step"], "ema_decay": info["options"].get("ema_decay"),
              "batch_size": info["options"].get("batch_size"), "real": args.real, "torch": torch.__version__,
              "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
