"""Command line: python -m dgf_core COMMAND ... (one module per command group: training, generation,
faces, evaluation, models; argument helpers in common).

Each command validates its arguments, prints the resolved configuration, then calls one library function.
Errors a user can fix (bad seeds, missing folders, corrupt checkpoints) print one line and exit with 2.
"""
from __future__ import annotations

import argparse
import sys

from ..checkpoint import CheckpointError
from ..data import DataError
from ..latent import SeedError
from .deploy import add_deploy_space, cmd_deploy_space
from .evaluation import (
    add_bench,
    add_curves,
    add_evaluate,
    add_evaluate_upscaler,
    cmd_bench,
    cmd_curves,
    cmd_evaluate,
    cmd_evaluate_upscaler,
)
from .faces import add_project, cmd_project
from .generation import (
    add_generate,
    add_upscale,
    add_video,
    cmd_generate,
    cmd_upscale,
    cmd_video,
)
from .models import add_import_rosinality, add_ship, cmd_import_rosinality, cmd_ship
from .training import (
    add_data,
    add_export_upscaler_detail,
    add_pack,
    add_train,
    add_train_upscaler,
    cmd_data,
    cmd_export_upscaler_detail,
    cmd_pack,
    cmd_train,
    cmd_train_upscaler,
)

USER_ERRORS = (SeedError, CheckpointError, DataError, FileNotFoundError, FileExistsError, ValueError)

COMMANDS = {
    "data": (add_data, cmd_data),
    "pack": (add_pack, cmd_pack),
    "train": (add_train, cmd_train),
    "generate": (add_generate, cmd_generate),
    "video": (add_video, cmd_video),
    "evaluate": (add_evaluate, cmd_evaluate),
    "bench": (add_bench, cmd_bench),
    "upscale": (add_upscale, cmd_upscale),
    "train-upscaler": (add_train_upscaler, cmd_train_upscaler),
    "export-upscaler-detail": (add_export_upscaler_detail, cmd_export_upscaler_detail),
    "evaluate-upscaler": (add_evaluate_upscaler, cmd_evaluate_upscaler),
    "import-rosinality": (add_import_rosinality, cmd_import_rosinality),
    "project": (add_project, cmd_project),
    "curves": (add_curves, cmd_curves),
    "ship": (add_ship, cmd_ship),
    "deploy-space": (add_deploy_space, cmd_deploy_space),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dgf_core", description="Deeply Good Fakes: train, sample, evaluate, benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    a = parser.parse_args(argv)
    a.argv = list(argv)
    try:
        return COMMANDS[a.command][1](a)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

