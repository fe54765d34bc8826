"""Commands on model files: `import-rosinality`."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


def add_import_rosinality(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-rosinality", help="convert a rosinality/stylegan2-pytorch generator into a model folder")
    p.add_argument("file", help="g_ema weights: .safetensors, or .pt/.pth holding a state dict or {'g_ema', 'latent_avg'}")
    p.add_argument("--out", required=True, help="model folder to write, e.g. weights/stylegan2-ffhq256")
    p.add_argument("--resolution", type=int, default=None, help="refuse the file unless it is this resolution")
    p.add_argument("--mapping-lr-mul", type=float, default=0.01, help="rosinality's lr_mlp (0.01 in the public ports)")
    p.add_argument("--fp32", action="store_true", help="store float32 (default float16, half the size)")
    p.add_argument("--dry-run", action="store_true", help="read and check the file, print the config, write nothing")


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
