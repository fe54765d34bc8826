"""Shared fixtures: tiny random models and tiny image folders, made in the test itself (never ../shared)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes long (a fresh virtual environment); run with DGF_SLOW_TESTS=1 or -m slow")


def make_image_folder(root: Path, n: int, size: tuple[int, int] = (24, 30), seed: int = 0) -> list[Path]:
    """n random RGB JPEGs of `size` (w, h) under root/sub/, named like CelebA files."""
    rng = np.random.default_rng(seed)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        p = root / "sub" / f"{i + 1:06d}.jpg"
        Image.fromarray(arr).save(p, quality=95)
        paths.append(p)
    return paths


def make_tiny_dcgan(folder: Path, resolution: int = 16, seed: int = 0, card: dict | None = None) -> Path:
    from dgf_core.checkpoint import save_model
    from dgf_core.models.dcgan import DCGANConfig, Discriminator, Generator

    torch.manual_seed(seed)
    cfg = DCGANConfig(resolution=resolution, g_channels=8, d_channels=8, z_dim=16)
    g, d = Generator(cfg), Discriminator(cfg)
    # give batch norm non-trivial running statistics so eval mode differs from identity
    g.train()
    with torch.no_grad():
        g(torch.randn(32, cfg.z_dim))
    return save_model(folder, "dcgan", cfg, g.eval(), d.eval(), card or {"description": "tiny test model"})


def make_tiny_stylegan2(folder: Path, resolution: int = 8, seed: int = 0, card: dict | None = None) -> Path:
    from dgf_core.checkpoint import save_model
    from dgf_core.models.stylegan import Discriminator, Generator, StyleGAN2Config

    torch.manual_seed(seed)
    cfg = StyleGAN2Config(resolution=resolution, z_dim=16, w_dim=16, mapping_layers=2, channel_base=64, channel_max=8,
                          d_channel_base=64, d_channel_max=8)
    g, d = Generator(cfg), Discriminator(cfg)
    g.estimate_mean_w(500, torch.Generator().manual_seed(seed))
    return save_model(folder, "stylegan2", cfg, g.eval(), d.eval(), card or {"description": "tiny test stylegan2"},
                      dtype=None)


def make_tiny_upscaler(folder: Path, seed: int = 0) -> Path:
    """A tiny x2/x4 upscaler whose to-RGB layers are not zero (so it differs from bicubic)."""
    from dgf_core.checkpoint import save_model
    from dgf_core.models.upscaler import Generator, UpscalerConfig

    torch.manual_seed(seed)
    g = Generator(UpscalerConfig(channels=8, growth=4, blocks1=1, channels2=4, growth2=4, blocks2=1, channels4=4,
                                 d_channels=4, d_layers=2))
    with torch.no_grad():
        for conv in (g.to_rgb2, g.to_rgb4):
            conv.weight.normal_(0, 0.05)
    return save_model(folder, "upscaler", g.cfg, g.eval(), None, {"description": "tiny test upscaler"})


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """A weights folder with one tiny DCGAN ('tiny-dcgan'); tests point DGF_WEIGHTS_DIR at it."""
    root = tmp_path_factory.mktemp("weights")
    make_tiny_dcgan(root / "tiny-dcgan")
    return root


@pytest.fixture(scope="session")
def app_weights_dir(tiny_weights_dir, tmp_path_factory) -> Path:
    """What the apps are tested on: 'tiny-dcgan' (16 px, the same weights as in tiny_weights_dir), 'tiny-stylegan2'
    (8 px, with a model card holding evaluation results) and 'tiny-upscaler'."""
    import shutil

    root = tmp_path_factory.mktemp("app-weights")
    shutil.copytree(tiny_weights_dir / "tiny-dcgan", root / "tiny-dcgan")
    make_tiny_stylegan2(root / "tiny-stylegan2", card={
        "description": "tiny test stylegan2", "images_seen": 1234, "hardware": "test CPU",
        "evaluation": {"face_detection": {"samples": {"p>=0.999": 0.5}}, "memorization": {"ratio": 1.25}}})
    make_tiny_upscaler(root / "tiny-upscaler")
    write_tiny_directions(root / "tiny-dcgan")  # tiny-dcgan can be edited (age, gender); tiny-stylegan2 cannot
    return root


def write_tiny_directions(folder: Path, attributes: tuple[str, ...] = ("age", "gender")) -> Path:
    """A directions.json (dgf_core.faces.edits format) with random unit directions for the model in `folder`."""
    from dgf_core.checkpoint import read_config, write_json_atomic
    from dgf_core.faces.edits import DIRECTIONS_FILE, DIRECTIONS_FORMAT

    meta = read_config(folder)
    dim = meta["config"]["z_dim"] if meta["family"] == "dcgan" else meta["config"]["w_dim"]
    rng = np.random.default_rng(0)
    table = {"format": DIRECTIONS_FORMAT, "model": folder.name, "weights_sha256": meta["weights_sha256"],
             "space": "z" if meta["family"] == "dcgan" else "w",
             "directions": {a: {"vector": (rng.standard_normal(dim) / np.sqrt(dim)).tolist()} for a in attributes}}
    write_json_atomic(table, folder / DIRECTIONS_FILE)
    return folder / DIRECTIONS_FILE


@pytest.fixture
def image_folder(tmp_path) -> Path:
    make_image_folder(tmp_path / "faces", 24)
    return tmp_path / "faces"


@pytest.fixture(scope="session")
def gradio_app(app_weights_dir, tmp_path_factory):
    """`python app.py` serving the tiny models (app_weights_dir) on 127.0.0.1 and a free port, shared by the app and browser
    tests (one per pytest-xdist worker that runs them); stopped by its PID at the end of the session. Its output is
    in `gradio_app.log`, its temporary files (Gradio's cache, scratch folders) under `gradio_app.tmp`."""
    from dgf_core.evaluation.bench import app_server

    # its own temporary folders (Gradio's cache, the scratch folders), so tests can check what is left on disk
    tmp = tmp_path_factory.mktemp("app-tmp")
    (tmp / "gradio").mkdir()
    env = {"TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(tmp / "gradio"), "DGF_UPLOAD_GRACE_S": "3"}
    with app_server(weights_dir=app_weights_dir, timeout=180, env=env, log=tmp_path_factory.mktemp("app") / "app.log") as srv:
        srv.tmp = tmp
        yield srv
    # stopped by SIGTERM, the app must close cleanly (exit 0), which is when it removes its scratch files
    assert srv.proc.returncode == 0, f"app.py exited with {srv.proc.returncode} on SIGTERM:\n{srv.log.read_text()[-2000:]}"
