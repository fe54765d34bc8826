"""`deploy-space`: upload the app, the core, the pages and the weights to a Hugging Face Space."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_dry_run

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_deploy_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy-space", help="upload the app to a Hugging Face Space (huggingface_hub's upload API)")
    p.add_argument("space", help="OWNER/NAME of the Space (created when missing)")
    p.add_argument("--root", default=str(REPO_ROOT), help="the checkout to deploy (default: this one)")
    p.add_argument("--token", default=None, help="Hugging Face token (default: HF_TOKEN or `hf auth login`'s)")
    p.add_argument("--private", action="store_true", help="create the Space as private")
    add_dry_run(p, help="list what would go up, with sizes, check it, upload nothing")


def cmd_deploy_space(a: argparse.Namespace) -> int:
    from ..serving.space import check_files, check_repo_id, deploy, listing, space_files

    check_repo_id(a.space)
    root = Path(a.root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    files = space_files(root)
    print(f"deploy-space {a.space} from {root.resolve()}{' (dry run)' if a.dry_run else ''}")
    print(listing(files))
    problems = check_files(files, root)
    if problems:
        raise ValueError(f"the Space would refuse or break on {len(problems)} file(s):\n  " + "\n  ".join(problems))
    if a.dry_run:
        print("ready: nothing uploaded (dry run)")
        return 0
    url = deploy(files, a.space, token=a.token, private=a.private)
    print(f"uploaded: {url}")
    return 0
