"""Command line: python -m dgf_core {train, generate, evaluate, bench} ...

Each command validates its arguments, prints the resolved configuration, then calls one library function.
Errors a user can fix (bad seeds, missing folders, corrupt checkpoints) print one line and exit with 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .data import DataError
from .latent import SeedError

USER_ERRORS = (SeedError, CheckpointError, DataError, FileNotFoundError, FileExistsError, ValueError)


def _kv(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def add_train(sub: argparse._SubParsersAction) -> None:
    from .models import FAMILIES

    p = sub.add_parser("train", help="train a GAN on folders of face images")
    p.add_argument("family", choices=sorted(f for f, fam in FAMILIES.items() if fam.kind == "generator"))
    p.add_argument("--data", action="append", required=True, help="image folder (repeatable; searched recursively)")
    p.add_argument("--out", required=True, help="run folder: state, log.jsonl, samples/, model/")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--r1-gamma", type=float, default=None, help="lazy R1 weight (default: family's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--sample-every", type=int, default=500)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile G and D")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--cache-dir", default=None, help="cache decoded images here (safetensors)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--model", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="architecture override, e.g. g_channels=32")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the resolved configuration and exit")


def cmd_train(a: argparse.Namespace) -> int:
    from .models import get_family
    from .train import TrainOptions, train

    defaults = {"stylegan2": {"r1_gamma": 0.1}}.get(a.family, {})
    opts = TrainOptions(
        data=a.data, out=a.out, family=a.family, model=dict(a.model), resolution=a.resolution,
        batch_size=a.batch_size, steps=a.steps, lr=a.lr, betas=(a.beta1, 0.999), ema_decay=a.ema_decay,
        r1_gamma=a.r1_gamma if a.r1_gamma is not None else defaults.get("r1_gamma", 0.0), seed=a.seed,
        log_every=a.log_every, sample_every=a.sample_every, checkpoint_every=a.checkpoint_every, device=a.device,
        amp=not a.no_amp, compile=a.compile, limit=a.limit, cache_dir=a.cache_dir, resume=a.resume,
        progress=not a.no_progress, threads=a.threads,
    )
    opts.validate()
    for d in opts.data:
        if not Path(d).exists():
            raise DataError(f"data path does not exist: {d}")
    config = get_family(opts.family).make_config({"resolution": opts.resolution, **opts.model})
    print(json.dumps({"train": dataclasses.asdict(opts), "config": dataclasses.asdict(config)}, indent=2, default=list))
    if a.dry_run:
        return 0
    model_dir = train(opts)
    print(f"model written to {model_dir}")
    return 0


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write one PNG per seed (and optionally a grid)")
    p.add_argument("--model", required=True, help="model name in weights/ or a model folder")
    p.add_argument("--seeds", required=True, help="e.g. 0-63 or 1,7,42")
    p.add_argument("--out", required=True, help="output folder: seed000042.png per seed")
    p.add_argument("--grid", default=None, help="also write all seeds as one grid PNG")
    p.add_argument("--truncation", type=float, default=1.0, help="psi in [0, 1]; 1 = none")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dry-run", action="store_true")


def cmd_generate(a: argparse.Namespace) -> int:
    from .latent import check_truncation, parse_seeds
    from .pipeline import FacePipeline, MAX_SEEDS_PER_CALL

    seeds = parse_seeds(a.seeds, max_count=100_000)
    psi = check_truncation(a.truncation)
    pipe = FacePipeline.from_pretrained(a.model, device=a.device)
    print(json.dumps({"generate": {"model": pipe.model.name, "path": str(pipe.model.path), "seeds": len(seeds),
                                   "first": seeds[0], "last": seeds[-1], "truncation": psi, "out": a.out,
                                   "grid": a.grid, "device": str(pipe.device)}}, indent=2))
    if a.dry_run:
        return 0
    paths = pipe.write_pngs(seeds, a.out, truncation=psi, batch_size=min(a.batch_size, MAX_SEEDS_PER_CALL), grid=a.grid)
    print(f"wrote {len(paths)} images to {a.out}" + (f" and grid {a.grid}" if a.grid else ""))
    return 0


COMMANDS = {"train": (add_train, cmd_train), "generate": (add_generate, cmd_generate)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dgf_core", description="Deeply Good Fakes: train, sample, evaluate, benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return COMMANDS[a.command][1](a)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
