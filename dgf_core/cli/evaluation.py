"""Commands that measure: `evaluate`, `evaluate-upscaler`, `bench`, `curves`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data import DataError
from .common import add_device, add_dry_run


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="face-detection rates, memorization ratio, classifier two-sample test (C2ST), "
                                        "coverage (female share, ages) (and FID with --inception-weights)")
    p.add_argument("--model", required=True)
    p.add_argument("--real", action="append", required=True, help="real image folder(s) the model was trained on")
    p.add_argument("--n", type=int, default=1000, help="number of samples (seeds 0..n-1)")
    p.add_argument("--truncation", type=float, default=1.0)
    add_device(p)
    p.add_argument("--inception-weights", default=None, help="FID Inception weights file (pt_inception-2015-12-05 .pth or .safetensors)")
    p.add_argument("--no-c2st", action="store_true",
                   help="skip the classifier two-sample tests (two 5-fold CNN fits, ~15 s each on one CPU thread at 64x64)")
    p.add_argument("--c2st-repeats", type=int, default=1, metavar="R",
                   help="repeat the samples-vs-held-out C2ST on R sets of n samples (seeds 0..R*n-1) and pool them: "
                        "its standard error shrinks about as 1/sqrt(R), so `ship` can see smaller changes (default 1)")
    p.add_argument("--c2st-also-at", type=int, action="append", default=[], metavar="SIDE",
                   help="run the two-sample tests again with samples and real faces downsampled to SIDE px (e.g. 64 for "
                        "a 128-px model: it must not lose what the 64-px one has; repeatable)")
    p.add_argument("--no-coverage", action="store_true", help="skip coverage by the attribute classifier (weights/attributes-utkface)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--write-card", action="store_true", help="store the results in the model card (config.json)")
    add_dry_run(p)


def cmd_evaluate(a: argparse.Namespace) -> int:
    from ..checkpoint import resolve_model_path
    from ..evaluation.metrics import evaluate_model
    from ..latent import check_truncation

    if a.n < 2:
        raise ValueError("--n must be at least 2")
    if a.c2st_repeats < 1:
        raise ValueError("--c2st-repeats must be at least 1")
    check_truncation(a.truncation)
    folder = resolve_model_path(a.model)
    for r in a.real:
        if not Path(r).exists():
            raise DataError(f"real data path does not exist: {r}")
    if a.inception_weights and not Path(a.inception_weights).is_file():
        raise FileNotFoundError(f"--inception-weights: no such file {a.inception_weights}")
    print(json.dumps({"evaluate": {"model": str(folder), "real": a.real, "n": a.n, "truncation": a.truncation,
                                   "fid": bool(a.inception_weights), "c2st": not a.no_c2st, "c2st_repeats": a.c2st_repeats,
                                   "c2st_also_at": a.c2st_also_at, "coverage": not a.no_coverage, "json": a.json}}, indent=2))
    if a.dry_run:
        return 0
    res = evaluate_model(folder, a.real, n=a.n, truncation=a.truncation, device=a.device, inception_weights=a.inception_weights,
                         c2st=not a.no_c2st, c2st_repeats=a.c2st_repeats, coverage=not a.no_coverage,
                         c2st_also_at=a.c2st_also_at)
    from ..evaluation.bench import machine

    res["machine"] = machine()
    res["command"] = "python -m dgf_core " + " ".join(a.argv)
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        from ..checkpoint import write_json_atomic

        write_json_atomic(res, a.json)
    if a.write_card:
        from ..checkpoint import CONFIG_FILE, read_config, write_json_atomic

        meta = read_config(folder)
        key = "evaluation" if a.truncation == 1.0 else f"evaluation_psi{a.truncation}"
        meta.setdefault("card", {})[key] = res
        write_json_atomic(meta, folder / CONFIG_FILE)
    return 0


def add_evaluate_upscaler(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate-upscaler", help="PSNR/SSIM vs bicubic on held-out faces; clip temporal stability")
    p.add_argument("--model", action="append", required=True, help="upscaler(s) to evaluate (repeatable)")
    p.add_argument("--data", action="append", required=True, help="HR face folder(s); their held-out split is used")
    p.add_argument("--faces", type=int, default=300, help="held-out faces per folder (spread evenly)")
    p.add_argument("--walk-model", default=None, help="also measure flicker on a latent walk of this generator")
    p.add_argument("--clip-frames", type=int, default=96, help="frames of each stability clip")
    p.add_argument("--detail", type=float, action="append", default=[], metavar="D",
                   help="also report Y-PSNR and the sharpness ratio at this detail (0..1; repeatable: 0, 0.5, 1)")
    p.add_argument("--c2st", action="store_true", help="with --detail: also the two-sample test of upscaled vs real faces")
    p.add_argument("--json", default=None, help="write the results here")
    add_dry_run(p)


def cmd_evaluate_upscaler(a: argparse.Namespace) -> int:
    from ..checkpoint import resolve_model_path

    from ..generation.upscale import check_detail

    if a.faces < 1 or a.clip_frames < 4:
        raise ValueError("--faces must be >= 1 and --clip-frames >= 4")
    details = [check_detail(d) for d in a.detail]
    if a.c2st and not details:
        raise ValueError("--c2st needs --detail (e.g. --detail 0 --detail 1)")
    models = [m if m == "bicubic" else str(resolve_model_path(m)) for m in a.model]
    for d in a.data:
        if not Path(d).exists():
            raise DataError(f"data path does not exist: {d}")
    print(json.dumps({"evaluate_upscaler": {"models": models, "data": a.data, "faces": a.faces, "walk_model": a.walk_model,
                                            "details": details, "c2st": a.c2st, "json": a.json}}, indent=2))
    if a.dry_run:
        return 0
    from ..evaluation.sr_metrics import evaluate_upscalers

    walk = str(resolve_model_path(a.walk_model)) if a.walk_model else None
    res = evaluate_upscalers(models, a.data, faces_per_folder=a.faces, walk_model=walk, clip_frames=a.clip_frames,
                             details=details, c2st=a.c2st)
    print(json.dumps(res, indent=2))
    if a.json:
        from ..checkpoint import write_json_atomic

        write_json_atomic(res, a.json)
    return 0


def add_bench(sub: argparse._SubParsersAction) -> None:
    from ..evaluation.bench import BENCHMARKS

    p = sub.add_parser("bench", help="speed benchmarks (latency, clip rendering, training throughput)")
    p.add_argument("--model", default=None, help="generator for the inference benchmarks (default dcgan-celeba64; "
                   "the memory benchmark: stylegan2-celeba64, whose targets docs/memory.md records)")
    p.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these (repeatable)")
    p.add_argument("--data", action="append", default=[], help="image folder(s) for training throughput (default: synthetic)")
    add_device(p)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="few repeats, tiny batches (smoke test)")
    p.add_argument("--round-trips", type=int, default=None,
                   help="app_load: fast-request round trips per phase (default 20, 5 with --quick)")
    p.add_argument("--json", default=None)
    add_dry_run(p)


def cmd_bench(a: argparse.Namespace) -> int:
    from ..evaluation.bench import BenchContext, run_benchmarks

    ctx = BenchContext(model=a.model or "dcgan-celeba64", memory_model=a.model or "stylegan2-celeba64", data=a.data,
                       device=a.device, repeats=a.repeats, train_steps=a.train_steps, quick=a.quick,
                       round_trips=a.round_trips)
    print(json.dumps({"bench": {"only": a.only, "model": ctx.model, "memory_model": ctx.memory_model, "data": a.data,
                                "device": a.device,
                                "repeats": a.repeats, "train_steps": a.train_steps, "quick": a.quick,
                                "round_trips": a.round_trips}}, indent=2))
    if a.dry_run:
        return 0
    res = run_benchmarks(ctx, a.only)
    if a.json:
        from ..checkpoint import write_json_atomic

        write_json_atomic(res, a.json)
        print(f"wrote {a.json}")
    return 0


def add_curves(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("curves", help="draw learning curves (face rate, C2ST) of training runs from their log.jsonl")
    p.add_argument("runs", nargs="*", metavar="RUN", help="training run folder (holds log.jsonl)")
    p.add_argument("--from-json", action="append", default=[], metavar="FILE",
                   help="also draw the runs of an earlier --json file (run folders that are gone); repeatable")
    p.add_argument("--out", required=True, help="PNG to write, e.g. docs/learning-curves.png")
    p.add_argument("--json", default=None, help="also write the extracted series here")
    p.add_argument("--real-rate", type=float, default=None,
                   help="real faces' face rate at p>=0.999 (from `evaluate`): a dashed reference line")
    p.add_argument("--size", default=None, help="WIDTHxHEIGHT in pixels (default 450 per panel x 400)")
    add_dry_run(p)


def cmd_curves(a: argparse.Namespace) -> int:
    from ..evaluation.curves import (
        check_runs,
        curves_json,
        default_size,
        panels,
        parse_size,
        plot_curves,
        read_run,
        runs_from_json,
    )

    if Path(a.out).suffix.lower() != ".png":
        raise ValueError(f"--out must be a .png file, got {a.out}")
    if a.real_rate is not None and not 0.0 <= a.real_rate <= 1.0:
        raise ValueError(f"--real-rate must be in [0, 1], got {a.real_rate}")
    if not a.runs and not a.from_json:
        raise ValueError("give at least one RUN folder or --from-json FILE")
    runs = [run for f in a.from_json for run in runs_from_json(f)] + [read_run(r) for r in a.runs]
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise ValueError(f"a run is given twice: {sorted({n for n in names if names.count(n) > 1})}")
    warnings = check_runs(runs)
    kinds = panels(runs)
    size = parse_size(a.size) if a.size else default_size(len(kinds))
    print(json.dumps({"curves": {"runs": [{"run": str(r.path), "family": r.family, "step_records": len(r.steps),
                                           "eval_records": len(r.evals)} for r in runs], "from_json": a.from_json,
                                 "panels": kinds, "real_rate": a.real_rate, "size": list(size), "out": a.out,
                                 "json": a.json}}, indent=2))
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if a.dry_run:
        return 0
    plot_curves(runs, a.out, real_rate=a.real_rate, size=size)
    if a.json:
        from ..checkpoint import write_json_atomic

        write_json_atomic(curves_json(runs, real_rate=a.real_rate), a.json)
    print(f"wrote {a.out}" + (f" and {a.json}" if a.json else ""))
    return 0
