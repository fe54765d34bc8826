"""Projection: the loss goes down, a seed names a projection, latents round-trip through .npz, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_dcgan
from PIL import Image

from dgf_core.checkpoint import load_model, save_model
from dgf_core.cli import main
from dgf_core.faces.losses import discriminator_features, multiscale_pixel_loss, psnr_rgb
from dgf_core.faces.projection import (
    ProjectionError,
    ProjectionOptions,
    ZSpace,
    check_latent_model,
    load_latent,
    project,
    project_model,
    save_latent,
)
from dgf_core.latent import synthesize
from dgf_core.models.stylegan import Discriminator as SGD
from dgf_core.models.stylegan import Generator as SGG
from dgf_core.models.stylegan import StyleGAN2Config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
    return load_model(make_tiny_dcgan(tmp_path_factory.mktemp("w") / "tiny-dcgan"), with_discriminator=True)


def tiny_stylegan(folder):
    torch.manual_seed(0)
    cfg = StyleGAN2Config(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16,
                          d_channel_base=128, d_channel_max=16)
    g, d = SGG(cfg), SGD(cfg)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.2)
    g.estimate_mean_w(2000, torch.Generator().manual_seed(1))
    return load_model(save_model(folder, "stylegan2", cfg, g.eval(), d.eval(), {"description": "tiny"}, dtype=None),
                      with_discriminator=True)


@pytest.fixture(scope="module")
def stylegan(tmp_path_factory):
    return tiny_stylegan(tmp_path_factory.mktemp("w") / "tiny-sg")


def reachable_target(model, seed=123):
    """An image the generator can make, so a good projection can get close to it."""
    z = torch.randn(1, model.config.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.generator(z).clamp(-1, 1)


def test_multiscale_loss_is_zero_only_for_equal_images():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert float(multiscale_pixel_loss(x, x)) == 0.0
    assert float(multiscale_pixel_loss(x, x + 0.1)) == pytest.approx(0.01 + 0.1, rel=1e-4)  # every scale: mse + l1


def test_discriminator_features_of_both_families(dcgan, stylegan):
    x = torch.zeros(1, 3, 16, 16)
    assert [f.shape[1] for f in discriminator_features(dcgan.discriminator, x)] == [8, 16]
    feats = discriminator_features(stylegan.discriminator, x)
    assert len(feats) == 3 and feats[-1].shape[-1] == 4  # from_rgb (16x16), 8x8, 4x4


def test_dcgan_projection_improves_on_its_start(dcgan):
    target = reachable_target(dcgan)
    steps = []
    res = project_model(dcgan, target, ProjectionOptions(steps=40, seed=0), progress=lambda s, n, l: steps.append((s, n)))
    assert steps[0] == (1, 40) and steps[-1] == (40, 40)
    start = ZSpace(dcgan.generator, dcgan.config.z_dim).initial(target, torch.Generator().manual_seed(0))
    with torch.no_grad():
        start_psnr = psnr_rgb(dcgan.generator(start), target)
    assert res.psnr > start_psnr + 1.0, (start_psnr, res.psnr)
    assert np.mean(res.losses[-5:]) < np.mean(res.losses[:5])
    assert res.latent.shape == (1, 16) and res.space == "z" and res.model == "tiny-dcgan"
    with torch.no_grad():  # the returned image is what the returned latent makes
        torch.testing.assert_close(synthesize(dcgan.generator, res.latent, "z"), res.image)


def test_a_seed_names_a_projection(dcgan):
    target = reachable_target(dcgan, seed=5)
    a = project(dcgan.generator, target, ProjectionOptions(steps=8, seed=3), discriminator=dcgan.discriminator)
    b = project(dcgan.generator, target, ProjectionOptions(steps=8, seed=3), discriminator=dcgan.discriminator)
    c = project(dcgan.generator, target, ProjectionOptions(steps=8, seed=4), discriminator=dcgan.discriminator)
    assert torch.equal(a.latent, b.latent) and a.losses == b.losses
    assert not torch.equal(a.latent, c.latent)


@pytest.mark.parametrize("space, shape", [("w", (1, 16)), ("w+", (1, 6, 16))])
def test_stylegan_projection_in_w_and_w_plus(stylegan, space, shape):
    target = reachable_target(stylegan, seed=7)
    res = project_model(stylegan, target, ProjectionOptions(steps=40, space=space, seed=0))
    assert res.latent.shape == shape and res.space == space
    with torch.no_grad():
        start = psnr_rgb(stylegan.generator.synthesis(stylegan.generator.broadcast(stylegan.generator.mean_w[None]), "const"), target)
        torch.testing.assert_close(synthesize(stylegan.generator, res.latent, space), res.image)
    assert res.psnr > start + 1.0, (start, res.psnr)


def test_bad_inputs(dcgan, stylegan):
    with pytest.raises(ProjectionError, match=r"\(1, 3, R, R\)"):
        project(dcgan.generator, torch.zeros(3, 16, 16))
    with pytest.raises(ProjectionError, match="generator makes"):
        project(dcgan.generator, torch.zeros(1, 3, 32, 32), ProjectionOptions(steps=1))
    with pytest.raises(ProjectionError, match="needs a StyleGAN2"):
        project(dcgan.generator, torch.zeros(1, 3, 16, 16), ProjectionOptions(steps=1, space="w+"))
    with pytest.raises(ProjectionError, match="steps"):
        ProjectionOptions(steps=0).validate()


def test_latent_npz_round_trip(dcgan, stylegan, tmp_path):
    res = project_model(stylegan, reachable_target(stylegan), ProjectionOptions(steps=2, space="w+", seed=9))
    path = save_latent(tmp_path / "face.npz", res)
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert set(z.files) >= {"latent", "space", "model", "weights_sha256"}
    saved = load_latent(path)
    assert torch.equal(saved.latent, res.latent) and saved.space == "w+" and saved.meta["seed"] == 9
    assert saved.weights_sha256 == stylegan.weights_sha256
    check_latent_model(saved, stylegan)
    with pytest.raises(ProjectionError, match="projected with model"):
        check_latent_model(saved, dcgan)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ProjectionError, match="not a readable"):
        load_latent(tmp_path / "bad.npz")
    np.savez(tmp_path / "obj.npz", latent=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ProjectionError):
        load_latent(tmp_path / "obj.npz")


def test_cli_project(dcgan, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(dcgan.path.parent))
    photo = tmp_path / "crop.png"
    with torch.no_grad():
        arr = dcgan.generator(torch.randn(1, 16, generator=torch.Generator().manual_seed(1)))[0]
    Image.fromarray(arr.add(1).mul(127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()).resize((40, 40)).save(photo)
    out = tmp_path / "lat.npz"
    assert main(["project", str(photo), "--model", "tiny-dcgan", "--out", str(out), "--dry-run", "--no-align"]) == 0
    assert not out.exists() and json.loads(capsys.readouterr().out)["project"]["discriminator"] is True
    rec = tmp_path / "rec.png"
    assert main(["project", str(photo), "--model", "tiny-dcgan", "--out", str(out), "--no-align", "--steps", "5",
                 "--save-reconstruction", str(rec)]) == 0
    captured = capsys.readouterr()
    assert "step 5/5" in captured.err and load_latent(out).model == "tiny-dcgan" and Image.open(rec).size == (16, 16)


@pytest.mark.parametrize("args, message", [
    (["--out", "x.txt"], "must be a .npz"),
    (["--steps", "0"], "steps must be"),
    (["--seed", "-1"], "seed must be"),
    (["--model", "nope"], "no model folder"),
    (["--photo", "missing.png"], "no such file"),
    (["--photo", "notimage.png"], "not an image"),
    (["--photo", "plain.png"], "no face found"),
])
def test_cli_project_errors(dcgan, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(dcgan.path.parent))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notimage.png").write_text("hello")
    ramp = np.linspace(0, 255, 100, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (100, 1))] * 3, -1)).save(tmp_path / "plain.png")  # no face in it
    opts = {"--model": "tiny-dcgan", "--out": "lat.npz", "--photo": "plain.png"}
    rest = []
    for k, v in zip(args[::2], args[1::2]):
        if k in opts:
            opts[k] = v
        else:
            rest += [k, v]
    argv = ["project", opts.pop("--photo")] + [x for kv in opts.items() for x in kv] + rest
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not (tmp_path / "lat.npz").exists()


def test_any_stylegan2_imported_from_rosinality_projects_edits_and_animates(tmp_path):
    """Item 5: a (tiny) official-layout StyleGAN2 brought through the rosinality loader, no discriminator."""
    from safetensors.torch import save_file
    from test_stylegan import make_rosinality_state_dict

    from dgf_core.faces.edits import apply_edits
    from dgf_core.faces.memory import MemorySpec, make_memory
    from dgf_core.faces.projection import load_projection_model
    from dgf_core.official import import_rosinality

    save_file(make_rosinality_state_dict(seed=3), str(tmp_path / "g.safetensors"))
    folder = import_rosinality(tmp_path / "g.safetensors", tmp_path / "ffhq-tiny", dtype=None, card={"crop_recipe": "ffhq"})
    model = load_projection_model(folder)
    assert model.discriminator is None
    from dgf_core.faces.alignment import load_canonical, model_recipe

    assert model_recipe(model.card) == "ffhq" and load_canonical("ffhq")[0, 0] < 0.4  # photos align to FFHQ's crop
    res = project_model(model, reachable_target(model, seed=2), ProjectionOptions(steps=20, space="w+"))
    assert res.space == "w+" and res.latent.shape == (1, model.generator.n_ws, 16) and np.isfinite(res.losses).all()
    edited = apply_edits(res.latent, "w+", {"age": torch.ones(16)}, {"age": 1.0})
    with torch.no_grad():
        assert not torch.equal(synthesize(model.generator, edited, "w+"), res.image)
    recipe = make_memory(model, res.latent, "w+", MemorySpec(frames=3, fps=6), [tmp_path / "m.gif"])
    assert recipe["space"] == "w+" and (tmp_path / "m.gif").stat().st_size > 0


def test_projecting_a_photo_writes_nothing(dcgan, tmp_path, monkeypatch):
    """Privacy: the core keeps the photo in memory; no file appears in the working or temporary folder."""
    import tempfile

    from dgf_core.faces.projection import project_photo

    work, tmp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    photo = Image.fromarray(np.full((40, 40, 3), 100, np.uint8))
    res = project_photo(dcgan, photo, ProjectionOptions(steps=2), align=False)
    written = [p for p in (*work.rglob("*"), *tmp.rglob("*")) if p.is_file()]  # (torch may make an empty cache folder)
    assert res.extra["notices"] == [] and written == []
