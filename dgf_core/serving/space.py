"""Deploy the app to a Hugging Face Space through the Hub's upload API (no git push, no git history).

`space_files(root)` decides what goes up: the Gradio app (app.py and its tabs, ui/), the Streamlit entry and pages,
the core package, the shipped weights, `requirements.txt` (and `packages.txt` when there is one), and the Space card
`space/README.md` as the Space's `README.md` (its front matter: sdk, sdk_version, app_file). `check_files` says what
a Space would refuse or break on, one line per problem; `deploy` uploads the checked files in one commit and removes
files the Space holds that are no longer part of it.

Why the API: a `git push` to the Hub refuses any file over 10 MB that is not in Git LFS (a shipped checkpoint is
12.7 MB) and carries the whole history (older weights included); `create_commit` stores large and binary files
in the Hub's large-file storage by itself and sends only the files named here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import CONFIG_FILE, PICKLE_SUFFIXES, WEIGHTS_FILE, file_sha256

SPACE_CARD = "space/README.md"
FILES = ("app.py", "streamlit_app.py", "streamlit_shared.py", "requirements.txt", "packages.txt")
FOLDERS = ("dgf_core", "ui", "pages", "weights")
REQUIRED = ("app.py", "requirements.txt", "README.md", "dgf_core/__init__.py")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}
# What the app never ships: pictures and clips (real photos and data sets stay off the Space: licences, privacy),
# archives, pickles (unpickling runs code; shipped weights are safetensors).
REFUSED_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".mp4", ".avi", ".mov",
                    ".npy", ".npz", ".zip", ".tar", ".gz", ".tgz", ".7z"} | set(PICKLE_SUFFIXES)
GIT_FILE_LIMIT = 10 * 1024 * 1024  # a git push refuses larger files outside LFS; the upload API puts them in LFS
SPACE_LIMIT = 1024 ** 3  # a Space repository's storage on the free tier
SAFE_NAME = re.compile(r"^[A-Za-z0-9._\-/]+$")
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*$")


@dataclass(frozen=True)
class SpaceFile:
    path_in_repo: str  # where it lands in the Space
    local: Path        # the file here
    size: int          # bytes

    @property
    def large(self) -> bool:
        """Over the 10 MB a git push takes outside LFS: the upload API stores it as a large file."""
        return self.size > GIT_FILE_LIMIT


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id or "") or len(repo_id) > 96:
        raise ValueError(f"a Space is named OWNER/NAME (letters, digits, '.', '_', '-'), got {repo_id!r}")
    return repo_id


def space_files(root: str | os.PathLike) -> list[SpaceFile]:
    """The files that make the Space, sorted by their path in it. Caches (__pycache__, *.pyc) are left out;
    everything else under the folders goes, so that `check_files` sees it."""
    root = Path(root)
    out = []
    card = root / SPACE_CARD
    if card.exists():
        out.append(SpaceFile("README.md", card, card.stat().st_size))
    for name in FILES:
        p = root / name
        if p.exists() or p.is_symlink():
            out.append(SpaceFile(name, p, p.lstat().st_size))
    for folder in FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(root)
            if p.is_dir() and not p.is_symlink():
                continue
            if SKIPPED_PARTS & set(rel.parts) or p.suffix in SKIPPED_SUFFIXES:
                continue
            out.append(SpaceFile(rel.as_posix(), p, p.lstat().st_size))
    return sorted(out, key=lambda f: f.path_in_repo)


def front_matter(text: str) -> dict[str, str]:
    """The `key: value` lines between the leading `---` fences of a Space card (flat keys only, quotes removed)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    out = {}
    for line in lines[1:]:
        if line.strip() == "---":
            return out
        if ":" in line and not line.startswith((" ", "#")):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip().strip("\"'")
    return {}  # no closing fence: not front matter


def pinned(requirements: str) -> dict[str, str]:
    """{normalized name: version} of the `name==version` lines of a requirements file."""
    out = {}
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name.strip()).lower()] = version.strip()
    return out


def check_files(files: list[SpaceFile], root: str | os.PathLike) -> list[str]:
    """Every reason the Space would refuse the upload or fail to start, one line each (empty: ready)."""
    root = Path(root).resolve()
    problems = []
    by_path = {f.path_in_repo: f for f in files}
    for need in REQUIRED:
        if need not in by_path:
            problems.append(f"{need}: missing (the Space needs it)" if need != "README.md"
                            else f"README.md: missing (the Space card comes from {SPACE_CARD})")
    total = 0
    for f in files:
        total += f.size
        where = f.path_in_repo
        if f.local.is_symlink():
            problems.append(f"{where}: a symbolic link ({os.readlink(f.local)}); the Space gets files only")
            continue
        if not f.local.resolve().is_relative_to(root):
            problems.append(f"{where}: lies outside the repository")
        if not SAFE_NAME.match(where) or any(part.startswith(".") for part in where.split("/")):
            problems.append(f"{where}: a hidden file or a name with unusual characters")
        if f.local.suffix.lower() in REFUSED_SUFFIXES:
            problems.append(f"{where}: {f.local.suffix} files are not part of the app (pictures, clips, data, pickles "
                            "stay off the Space)")
    if total > SPACE_LIMIT:
        problems.append(f"{total / 1e6:.0f} MB in all, over the Space's {SPACE_LIMIT / 1e6:.0f} MB")
    problems += _check_card(by_path)
    problems += _check_weights(files)
    return problems


def _check_card(by_path: dict[str, SpaceFile]) -> list[str]:
    if "README.md" not in by_path or "requirements.txt" not in by_path:
        return []
    meta = front_matter(by_path["README.md"].local.read_text(encoding="utf-8"))
    if not meta:
        return [f"{SPACE_CARD}: no front matter (--- sdk: gradio ... ---)"]
    problems = []
    if meta.get("sdk") != "gradio":
        problems.append(f"{SPACE_CARD}: sdk is {meta.get('sdk')!r}, the app is a Gradio app (sdk: gradio)")
    app_file = meta.get("app_file", "app.py")
    if app_file not in by_path:
        problems.append(f"{SPACE_CARD}: app_file {app_file!r} is not uploaded")
    pins = pinned(by_path["requirements.txt"].local.read_text(encoding="utf-8"))
    if meta.get("sdk_version") != pins.get("gradio"):
        problems.append(f"{SPACE_CARD}: sdk_version {meta.get('sdk_version')!r} is not requirements.txt's gradio "
                        f"{pins.get('gradio')!r} (the Space installs the sdk_version)")
    return problems


def _check_weights(files: list[SpaceFile]) -> list[str]:
    """Each shipped model folder holds its weights and config, and the weights match the config's sha256."""
    import json

    problems = []
    folders = sorted({f.path_in_repo.split("/")[1] for f in files if f.path_in_repo.startswith("weights/")
                      and f.path_in_repo.count("/") >= 2})
    by_path = {f.path_in_repo: f for f in files}
    for name in folders:
        cfg, w = by_path.get(f"weights/{name}/{CONFIG_FILE}"), by_path.get(f"weights/{name}/{WEIGHTS_FILE}")
        if cfg is None or w is None:
            problems.append(f"weights/{name}: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
            continue
        try:
            want = json.loads(cfg.local.read_text(encoding="utf-8")).get("weights_sha256")
        except (OSError, ValueError) as e:
            problems.append(f"weights/{name}/{CONFIG_FILE}: unreadable ({e})")
            continue
        if want and want != file_sha256(w.local):
            problems.append(f"weights/{name}/{WEIGHTS_FILE}: does not match the sha256 in its {CONFIG_FILE}")
    return problems


def listing(files: list[SpaceFile]) -> str:
    """One line per file (size, path, 'large file' where the API stores it in LFS), then the total."""
    lines = [f"{f.size:>12,}  {f.path_in_repo}{'  (large file: stored in LFS by the upload API)' if f.large else ''}"
             for f in files]
    lines.append(f"{sum(f.size for f in files):>12,}  bytes in {len(files)} files")
    return "\n".join(lines)


def deploy(files: list[SpaceFile], repo_id: str, *, token: str | None = None, private: bool = False,
           api: Any = None, message: str = "Deploy Deeply Good Fakes") -> str:
    """Create the Space if needed and upload `files` in one commit, deleting what the Space holds beyond them
    (its .gitattributes stays). Returns the commit URL. `api`: an `huggingface_hub.HfApi` (made here if None)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants

    check_repo_id(repo_id)
    if constants.HF_HUB_OFFLINE:
        raise ValueError("HF_HUB_OFFLINE is set: unset it to deploy (the upload needs the network)")
    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    keep = {f.path_in_repo for f in files} | {".gitattributes"}
    stale = [p for p in api.list_repo_files(repo_id, repo_type="space") if p not in keep]
    ops = [CommitOperationAdd(path_in_repo=f.path_in_repo, path_or_fileobj=str(f.local)) for f in files]
    ops += [CommitOperationDelete(path_in_repo=p) for p in stale]
    info = api.create_commit(repo_id, operations=ops, commit_message=message, repo_type="space")
    return str(getattr(info, "commit_url", info))
