"""What a Hugging Face Space does: a new virtual environment made with `pip install -r requirements.txt` alone (no
--no-deps file, nothing else) imports dgf_core.faces.alignment, aligns a photo with the shipped MTCNN, and runs the
Memory tab (`python app.py`, driven through gradio_client).

Slow: creating the environment installs torch and the rest (minutes). Runs with DGF_SLOW_TESTS=1 or `-m slow`;
DGF_FRESH_VENV=PATH reuses an environment made before (its python is PATH/bin/python)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "tests" / "data" / "mtcnn-scene.png"


@pytest.fixture(scope="module")
def fresh_python(request, tmp_path_factory) -> Path:
    if not (os.environ.get("DGF_SLOW_TESTS") or "slow" in (request.config.getoption("markexpr") or "")):
        pytest.skip("slow (a new virtual environment): run with DGF_SLOW_TESTS=1 or -m slow")
    if os.environ.get("DGF_FRESH_VENV"):
        return Path(os.environ["DGF_FRESH_VENV"]) / "bin" / "python"
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(ROOT / "requirements.txt")],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"fresh environment: pip install -r requirements.txt took {time.perf_counter() - t0:.0f} s")
    return py


def run_in(py: Path, code: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DGF_WEIGHTS_DIR")}
    full_env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", **(env or {}))
    r = subprocess.run([str(py), "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_fresh_environment_aligns_a_photo(fresh_python):
    out = run_in(fresh_python, f"""
import importlib.util, sys
from PIL import Image
from dgf_core.faces.alignment import align_face
assert sys.prefix != sys.base_prefix and importlib.util.find_spec("facenet_pytorch") is None
import pytorch_fid.inception  # FID's architecture comes from requirements.txt too
tight = Image.open({str(SCENE)!r}).convert("RGB").crop((30, 50, 96, 140))
face = align_face(tight, 64)[0]
print(tuple(face.image.shape), face.notices)
""")
    assert out.startswith("(3, 64, 64) [\"the photo is cropped close to the face")


def test_fresh_environment_runs_the_memory_tab(fresh_python, app_weights_dir):
    out = run_in(fresh_python, f"""
from gradio_client import Client, handle_file
from dgf_core.generation import video
from dgf_core.evaluation.bench import app_server

with app_server(weights_dir={str(app_weights_dir)!r}, timeout=300) as srv:
    client = Client(srv.url, verbose=False, analytics_enabled=False)
    # photo, consent, model, steps, align, age, gender, frames, fps, mark
    path = client.predict(handle_file({str(SCENE)!r}), True, "tiny-dcgan", 2, True, 0.0, 0.0, 4, 8, False,
                          api_name="/project")
    recipe = video.read_clip_recipe(path)
    print(video.read_clip(path)[0].shape, recipe["kind"], recipe["model"], recipe["render"])
""", timeout=900)
    # rendered at the photo's own size (the default, render "photo": OpenCV's flow from requirements.txt alone)
    assert out.strip().endswith("(4, 160, 224, 3) memory tiny-dcgan photo")
