"""Memory clips: the walk loops, stays small, peaks the edit mid-clip; frames, mark and recipe."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_dcgan

from dgf_core.checkpoint import load_model
from dgf_core.faces.memory import (
    MemoryClipError,
    MemorySpec,
    add_mark,
    make_memory,
    memory_latents,
    render_memory,
)


def test_walk_loops_and_stays_on_a_small_circle():
    base = torch.randn(1, 10, generator=torch.Generator().manual_seed(0))
    spec = MemorySpec(frames=12, radius=0.1, seed=3)
    lat = memory_latents(base, "z", spec)
    assert lat.shape == (12, 10)
    d = (lat - base).norm(dim=1)
    r = 0.1 * np.sqrt(20)
    assert torch.allclose(d, torch.full((12,), r), atol=1e-4)  # constant distance: a circle around the face
    step = (lat[1:] - lat[:-1]).norm(dim=1)
    assert torch.allclose(step, step[0].expand(11), atol=1e-4)
    assert float((lat[-1] - lat[0]).norm()) == pytest.approx(float(step[0]), abs=1e-4)  # last -> first: one more step
    assert not torch.equal(lat, memory_latents(base, "z", MemorySpec(frames=12, radius=0.1, seed=4)))


def test_edit_peaks_mid_clip_and_w_plus_moves_every_layer():
    base = torch.zeros(1, 3, 4)
    dirs = {"age": torch.tensor([0.0, 0.0, 0.0, 2.0])}
    lat = memory_latents(base, "w+", MemorySpec(frames=8, radius=0.0, edit={"age": 1.5}), directions=dirs)
    along = lat[:, 0, 3]
    assert torch.allclose(along[[0, 4]], torch.tensor([0.0, 3.0])) and int(along.argmax()) == 4
    assert torch.equal(lat[:, 0], lat[:, 2])
    with pytest.raises(MemoryClipError, match="no edit directions"):
        memory_latents(base, "w+", MemorySpec(edit={"age": 1.0}))
    with pytest.raises(MemoryClipError, match="radius"):
        memory_latents(base, "w+", MemorySpec(radius=2.0))


def test_mark_is_visible():
    frame = np.full((64, 64, 3), 128, np.uint8)
    marked = add_mark(frame)
    assert marked.shape == frame.shape and (marked[-8:] != 128).any() and (marked[:40] == 128).all()


def test_render_and_write_gif_with_recipe(tmp_path):
    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    z = torch.randn(1, 16, generator=torch.Generator().manual_seed(0))
    spec = MemorySpec(frames=4, fps=8, mark=False)
    frames = render_memory(model.generator, memory_latents(z, "z", spec), "z", spec)
    assert frames.shape == (4, 16, 16, 3) and frames.dtype == np.uint8 and not (frames[0] == frames[1]).all()
    recipe = make_memory(model, z, "z", MemorySpec(frames=4, fps=8), [tmp_path / "m.gif"])
    assert recipe["weights_sha256"] == model.weights_sha256 and np.allclose(recipe["latent"], z.numpy(), atol=1e-4)
    data = (tmp_path / "m.gif").read_bytes()
    assert data[:6] == b"GIF89a" and b'"kind":"memory"' in data
    json.dumps(recipe)


def test_memory_from_latent_file(tmp_path):
    from dgf_core.faces.edits import EditError, save_directions
    from dgf_core.faces.memory import memory_from_file
    from dgf_core.faces.projection import ProjectionOptions, project_model, save_latent

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    res = project_model(model, torch.zeros(1, 3, 16, 16), ProjectionOptions(steps=2))
    path = save_latent(tmp_path / "face.npz", res)
    with pytest.raises(EditError, match="no edit directions"):
        memory_from_file(path, [tmp_path / "a.gif"], MemorySpec(frames=4, edit={"age": 1.0}), model_name=str(model.path))
    save_directions({"format": "dgf-directions/1", "model": "tiny", "weights_sha256": model.weights_sha256, "space": "z",
                     "directions": {"age": {"vector": [0.0] * 15 + [1.0]}}}, tmp_path / "tiny" / "directions.json")
    recipe = memory_from_file(path, [tmp_path / "a.gif"], MemorySpec(frames=4, edit={"age": 1.0}), model_name=str(model.path))
    assert recipe["edit"] == {"age": 1.0} and (tmp_path / "a.gif").stat().st_size > 0


def test_cli_video_from_a_latent(tmp_path, capsys):
    from dgf_core.cli import main
    from dgf_core.faces.projection import ProjectionOptions, project_model, save_latent

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    path = save_latent(tmp_path / "face.npz", project_model(model, torch.zeros(1, 3, 16, 16), ProjectionOptions(steps=2)))
    out = tmp_path / "m.gif"
    assert main(["video", "--latent", str(path), "--model", str(model.path), "--frames", "4", "--fps", "8",
                 "--out", str(out)]) == 0
    assert out.read_bytes()[:6] == b"GIF89a" and b'"kind":"memory"' in out.read_bytes()
    # no directions beside the tiny model: a clear one-line error, and no clip half-written
    assert main(["video", "--latent", str(path), "--model", str(model.path), "--edit", "age=+1", "--out",
                 str(tmp_path / "e.gif")]) == 2
    assert "no edit directions" in capsys.readouterr().err and not (tmp_path / "e.gif").exists()
    assert main(["video", "--seeds", "1,2", "--model", str(model.path), "--edit", "age=1", "--out", str(out)]) == 2
    assert main(["video", "--latent", str(tmp_path / "nope.npz"), "--out", str(out)]) == 2


def test_cli_motions_on_a_latent_and_a_photo(tmp_path, capsys):
    from PIL import Image

    from dgf_core.cli import main
    from dgf_core.faces.edits import save_directions
    from dgf_core.faces.projection import ProjectionOptions, project_model, save_latent

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    path = save_latent(tmp_path / "face.npz", project_model(model, torch.zeros(1, 3, 16, 16), ProjectionOptions(steps=2)))
    out = tmp_path / "m.gif"
    base = ["video", "--latent", str(path), "--model", str(model.path), "--frames", "4", "--fps", "8", "--out", str(out)]
    assert main(base + ["--motion", "wink"]) == 2
    assert "known motions: alive, smile, blink" in capsys.readouterr().err
    assert main(base + ["--motion", "nod"]) == 2  # no pitch direction beside the tiny model: it says so
    assert "needs the edit direction pitch" in capsys.readouterr().err and not out.exists()
    save_directions({"format": "dgf-directions/1", "model": "tiny", "weights_sha256": model.weights_sha256, "space": "z",
                     "directions": {"pitch": {"vector": [0.0] * 15 + [1.0], "motion_amount": 1.5}}},
                    tmp_path / "tiny" / "directions.json")
    assert main(base + ["--motion", "nod,drift"]) == 0
    from dgf_core.generation.video import read_clip_recipe

    recipe = read_clip_recipe(out)
    assert recipe["motion"] == "nod,drift" and recipe["render"] == "model"
    photo = tmp_path / "crop.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 26, 3), dtype=np.uint8)).save(photo)
    proj = ["project", str(photo), "--model", str(model.path), "--out", str(tmp_path / "p.npz"), "--no-align",
            "--steps", "2", "--tune-steps", "0"]
    assert main(proj + ["--motion", "nod"]) == 2
    assert "--motion works with --save-memory" in capsys.readouterr().err
    assert main(proj + ["--save-memory", str(tmp_path / "p.gif"), "--motion", "nod", "--frames", "4"]) == 0
    recipe = read_clip_recipe(tmp_path / "p.gif")
    assert recipe["render"] == "photo" and (recipe["width"], recipe["height"]) == (26, 30) and recipe["motion"] == "nod"
    assert main(proj + ["--save-memory", str(tmp_path / "q.gif"), "--render", "model", "--frames", "4"]) == 0
    assert read_clip_recipe(tmp_path / "q.gif")["render"] == "model"
