"""Commands on model files: `import-rosinality`, `ship`."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .common import add_device, add_dry_run


def add_import_rosinality(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-rosinality", help="convert a rosinality/stylegan2-pytorch generator into a model folder")
    p.add_argument("file", help="g_ema weights: .safetensors, or .pt/.pth holding a state dict or {'g_ema', 'latent_avg'}")
    p.add_argument("--out", required=True, help="model folder to write, e.g. weights/stylegan2-ffhq256")
    p.add_argument("--resolution", type=int, default=None, help="refuse the file unless it is this resolution")
    p.add_argument("--mapping-lr-mul", type=float, default=0.01, help="rosinality's lr_mlp (0.01 in the public ports)")
    p.add_argument("--fp32", action="store_true", help="store float32 (default float16, half the size)")
    add_dry_run(p, help="read and check the file, print the config, write nothing")


def cmd_import_rosinality(a: argparse.Namespace) -> int:
    import torch

    from ..official import import_rosinality, load_rosinality

    if Path(a.out).exists() and any(Path(a.out).iterdir()):
        raise FileExistsError(f"{a.out} exists and is not empty")
    print(json.dumps({"import-rosinality": {"file": a.file, "out": a.out, "resolution": a.resolution,
                                            "mapping_lr_mul": a.mapping_lr_mul, "dtype": "float32" if a.fp32 else "float16"}}, indent=2))
    if a.dry_run:
        imported = load_rosinality(a.file, mapping_lr_mul=a.mapping_lr_mul)
        print(json.dumps({"config": dataclasses.asdict(imported.config), "notes": imported.notes}, indent=2))
        return 0
    folder = import_rosinality(a.file, a.out, resolution=a.resolution, mapping_lr_mul=a.mapping_lr_mul,
                               dtype=None if a.fp32 else torch.float16)
    print(f"model written to {folder}")
    return 0


def add_ship(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ship", help="replace a shipped generator with a candidate (a snapshot, a run's model) only if "
                                    "`evaluate` shows it measurably better")
    p.add_argument("candidate", help="model folder to ship, e.g. ~/dgf-runs/sg2/snapshots/kimg000160")
    p.add_argument("--as", dest="name", required=True, help="shipped model to replace, e.g. stylegan2-celeba64")
    p.add_argument("--evaluation", default=None,
                   help="the candidate's `evaluate --json` file (else it is evaluated now, like the shipped one)")
    p.add_argument("--weights-dir", default="weights", help="folder of the shipped models (default weights/)")
    p.add_argument("--note", default=None, help="notes for the model card (how it was trained, what it is for)")
    p.add_argument("--status", default=None,
                   help="the model's status, shown wherever the apps describe it (e.g. 'in training: not yet at its "
                        "targets'); a later ship without it drops it")
    p.add_argument("--force", action="store_true", help="ship even if it is not better (the comparison is still printed)")
    add_device(p)
    add_dry_run(p, help="compare and print the verdict; change nothing")


def cmd_ship(a: argparse.Namespace) -> int:
    from ..checkpoint import CONFIG_FILE, read_config
    from ..evaluation.promotion import check_evaluation_of, compare, improves, install

    candidate = Path(a.candidate).expanduser()
    dest = Path(a.weights_dir) / a.name
    if not (candidate / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"no model folder at {candidate}")
    if candidate.resolve() == dest.resolve():
        raise ValueError(f"{candidate} is already {dest}")
    shipped = read_config(dest).get("card", {}).get("evaluation") if (dest / CONFIG_FILE).is_file() else None
    if a.evaluation:
        new = json.loads(Path(a.evaluation).read_text())
        check_evaluation_of(candidate, new)
    elif shipped is not None:
        from ..evaluation.bench import machine
        from ..evaluation.metrics import evaluate_model

        repeats = len(shipped.get("c2st", {}).get("samples_vs_heldout", {}).get("repeats", [])) or 1
        print(f"evaluating {candidate} like {dest} (n {shipped['n_samples']}, psi {shipped['truncation']}, "
              f"C2ST repeats {repeats})", flush=True)
        new = evaluate_model(candidate, shipped["real_data"], n=int(shipped["n_samples"]),
                             truncation=float(shipped["truncation"]), c2st_repeats=repeats, device=a.device)
        new["machine"], new["command"] = machine(), "python -m dgf_core " + " ".join(a.argv)
    else:
        raise ValueError(f"{dest} has no evaluation in its card and none was given: pass --evaluation FILE")
    if shipped is None:
        print(f"{dest}: nothing shipped to compare with" if not dest.exists() else f"{dest}: its card has no evaluation")
        better = a.force or not dest.exists()
    else:
        changes = compare(shipped, new)
        print(f"{dest.name} (shipped) -> {candidate}")
        for c in changes:
            print("  " + c.line())
        better = improves(changes)
        print("verdict: " + ("measurably better" if better else "not measurably better"))
    if not (better or a.force):
        print(f"{dest} is unchanged (--force ships anyway)")
        return 1
    if a.dry_run:
        print(f"dry run: {dest} is unchanged")
        return 0
    dropped = install(candidate, dest, new, a.note, a.status)
    print(f"shipped {candidate} as {dest}")
    for f in dropped:
        print(f"  removed {dest / f}: computed from the old weights; recompute it for these "
              f"(scripts/compute_directions.py --model {dest})")
    return 0
