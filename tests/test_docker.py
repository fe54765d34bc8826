"""The Dockerfile, without a Docker engine: what it copies exists and is enough to run the app, and its
command is the README's (`python app.py`)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_COMMAND = ["python", "app.py"]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def copied() -> list[str]:
    sources = []
    for word, rest in instructions():
        if word in ("COPY", "ADD"):
            parts = [p for p in rest.split() if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def test_dockerfile_copies_files_that_exist():
    sources = copied()
    assert {"requirements.txt", "dgf_core/", "ui/", "weights/", "app.py"} <= set(sources)
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"the Dockerfile copies {missing}, which are not in the repository"


def test_command_is_the_readmes_app_command():
    cmds = [rest for word, rest in instructions() if word == "CMD"]
    assert len(cmds) == 1 and json.loads(cmds[0]) == APP_COMMAND
    env = " ".join(rest for word, rest in instructions() if word == "ENV")
    assert "GRADIO_SERVER_NAME=0.0.0.0" in env  # listen beyond the container's loopback
    assert "EXPOSE 7860" in [f"{w} {r}" for w, r in instructions()]
    readme = ROOT / "README.md"
    if not readme.exists():
        pytest.skip("no README.md yet")
    assert " ".join(APP_COMMAND) in readme.read_text()


def test_the_copied_files_are_enough_to_build_the_app(tmp_path, tiny_weights_dir):
    """Import app.py from a folder holding only what the image holds (no tests/, no streamlit files)."""
    for src in copied():
        if src == "weights/":
            shutil.copytree(tiny_weights_dir, tmp_path / "weights")  # the image's weights, here a tiny model
        elif src.endswith("/"):
            shutil.copytree(ROOT / src, tmp_path / src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / src, tmp_path / src)
    env = {k: v for k, v in os.environ.items() if k not in ("DGF_WEIGHTS_DIR", "PYTHONPATH")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    code = ("import sys, app; from dgf_core.serving import registry; print(registry.generators()); "
            "extra = sorted({m.split('.')[0] for m in sys.modules} & {'facenet_pytorch', 'pytorch_fid', 'streamlit'}); "
            "print(extra)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[:2] == ["['tiny-dcgan']", "[]"]
