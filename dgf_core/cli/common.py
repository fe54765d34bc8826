"""Argument helpers shared by the command groups: the flags several commands take (`--device`, `--threads`,
`--dry-run`, `--seed`, architecture overrides) are declared here once, so they read and behave the same everywhere."""
from __future__ import annotations

import argparse
import json

DEVICE_HELP = "auto (CUDA if available), cpu, cuda, cuda:1 ..."


def key_value(text: str) -> tuple[str, object]:
    """`KEY=VALUE` with VALUE parsed as JSON where it is JSON (numbers, booleans, lists), else kept as text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def add_device(p: argparse.ArgumentParser, default: str = "auto") -> None:
    p.add_argument("--device", default=default, help=f"{DEVICE_HELP} (default: {default})")


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")


def add_dry_run(p: argparse.ArgumentParser, help: str = "print the resolved configuration and exit") -> None:
    p.add_argument("--dry-run", action="store_true", help=help)


def add_seed(p: argparse.ArgumentParser, help: str = "random seed (default: 0)") -> None:
    p.add_argument("--seed", type=int, default=0, help=help)


def add_model_overrides(p: argparse.ArgumentParser, example: str) -> None:
    """Repeatable `--model KEY=VALUE` architecture overrides (training commands)."""
    p.add_argument("--model", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help=f"architecture override, e.g. {example} (repeatable)")


def set_threads(threads: int | None) -> None:
    """Apply `--threads` (None: leave torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
