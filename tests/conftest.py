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


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory) -> Path:
    """A weights folder with one tiny DCGAN ('tiny-dcgan'); tests point DGF_WEIGHTS_DIR at it."""
    root = tmp_path_factory.mktemp("weights")
    make_tiny_dcgan(root / "tiny-dcgan")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    make_image_folder(tmp_path / "faces", 24)
    return tmp_path / "faces"


@pytest.fixture(scope="session")
def gradio_app(tiny_weights_dir, tmp_path_factory):
    """`python app.py` serving the tiny model on 127.0.0.1 and a free port, shared by the app and browser
    tests; stopped by its PID at the end of the session. Its output is in `gradio_app.log`."""
    from dgf_core.bench import app_server

    with app_server(weights_dir=tiny_weights_dir, timeout=180, log=tmp_path_factory.mktemp("app") / "app.log") as srv:
        yield srv
    # stopped by SIGTERM, the app must close cleanly (exit 0), which is when it removes its scratch files
    assert srv.proc.returncode == 0, f"app.py exited with {srv.proc.returncode} on SIGTERM:\n{srv.log.read_text()[-2000:]}"
