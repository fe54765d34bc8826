"""Pivotal tuning: it reaches a photo the model cannot make, leaves the model and the disk alone, keeps far latents
as they were, and the one photo -> memory core call (app, Streamlit, CLI) uses it."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_dcgan
from PIL import Image
from test_projection import tiny_stylegan

from dgf_core.checkpoint import load_model
from dgf_core.cli import main
from dgf_core.faces.memory import MemorySpec, memory_from_photo, overall_progress
from dgf_core.faces.projection import ProjectionError, ProjectionOptions, project_model
from dgf_core.faces.tuning import SPACE_DEFAULTS, TuningOptions, default_tuning, locality_drift, tune

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dcgan(tmp_path_factory):
    return load_model(make_tiny_dcgan(tmp_path_factory.mktemp("w") / "tiny-dcgan"), with_discriminator=True)


@pytest.fixture(scope="module")
def stylegan(tmp_path_factory):
    return tiny_stylegan(tmp_path_factory.mktemp("w") / "tiny-sg")


def photo_like(res: int = 16, seed: int = 0) -> torch.Tensor:
    """A smooth random image in [-1, 1], (1, 3, res, res): no tiny random generator makes it exactly."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, 4, 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(small, size=(res, res), mode="bilinear", align_corners=False)


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("family", ["dcgan", "stylegan"])
def test_tuning_reaches_the_photo_and_leaves_the_model_alone(family, dcgan, stylegan):
    model = dcgan if family == "dcgan" else stylegan
    target = photo_like()
    before = state(model.generator)
    proj = project_model(model, target, ProjectionOptions(steps=10))
    res = tune(model.generator, proj.latent, proj.space, target, TuningOptions(steps=40, lr=1e-2, locality_weight=0.1))
    assert res.image.shape == target.shape and len(res.losses) == 40
    assert res.psnr > proj.psnr + 3, (proj.psnr, res.psnr)
    assert res.losses[-1] < res.losses[0]
    for k, v in state(model.generator).items():
        assert torch.equal(v, before[k]), k  # the shared model is untouched: only the private copy learned
    assert not any(p.requires_grad for p in res.generator.parameters())


def test_a_seed_names_a_tuning_and_zero_steps_change_nothing(dcgan):
    target = photo_like(seed=3)
    proj = project_model(dcgan, target, ProjectionOptions(steps=5))
    a = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=5))
    b = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=5))
    c = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=5, seed=1))
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)  # the seed draws the locality latents
    none = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=0))
    assert torch.allclose(none.image, proj.image, atol=1e-6) and none.losses == []


def test_locality_keeps_far_latents_as_they_were(dcgan):
    target = photo_like(seed=5)
    proj = project_model(dcgan, target, ProjectionOptions(steps=5))
    free = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=40, lr=1e-2, locality_weight=0.0))
    held = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=40, lr=1e-2, locality_weight=5.0))
    d_free = locality_drift(dcgan.generator, free.generator, proj.latent, "z", radius=0.3)
    d_held = locality_drift(dcgan.generator, held.generator, proj.latent, "z", radius=0.3)
    assert d_held < 0.7 * d_free, (d_held, d_free)


def test_defaults_follow_the_latent_space(dcgan, stylegan):
    """The StyleGAN2 stores equalized-lr weights (N(0, 1)), the DCGAN its weights at scale: options left None take
    their space's measured default, the result records what was used, and an explicit value wins."""
    target = photo_like(seed=2)
    for model in (dcgan, stylegan):
        proj = project_model(model, target, ProjectionOptions(steps=2))
        res = tune(model.generator, proj.latent, proj.space, target, TuningOptions(steps=1))
        expected = {**SPACE_DEFAULTS[proj.space], "steps": 1}
        assert {k: getattr(res.options, k) for k in expected} == expected
        assert default_tuning(model) == TuningOptions().resolved(proj.space)
    assert SPACE_DEFAULTS["w+"]["lr"] > SPACE_DEFAULTS["z"]["lr"]
    assert TuningOptions(lr=3e-3).resolved("w+").lr == 3e-3 and TuningOptions().lr is None
    assert None not in dataclasses.asdict(TuningOptions().resolved("z")).values()
    with pytest.raises(ProjectionError, match="latent space"):
        TuningOptions().resolved("q")


def test_sparse_locality_steps_still_hold_far_latents(dcgan):
    """locality_every k applies the locality loss on every k-th step only, with k times the weight: cheaper, and it
    still holds far latents far better than no locality."""
    target = photo_like(seed=5)
    proj = project_model(dcgan, target, ProjectionOptions(steps=5))
    base = TuningOptions(steps=40, lr=1e-2, locality_batch=4, locality_radius=0.3)
    free = tune(dcgan.generator, proj.latent, "z", target, dataclasses.replace(base, locality_weight=0.0))
    every = tune(dcgan.generator, proj.latent, "z", target, dataclasses.replace(base, locality_weight=1.0))
    sparse = tune(dcgan.generator, proj.latent, "z", target,
                  dataclasses.replace(base, locality_weight=1.0, locality_every=4))
    drift = {k: locality_drift(dcgan.generator, r.generator, proj.latent, "z", radius=0.3)
             for k, r in (("free", free), ("every", every), ("sparse", sparse))}
    assert drift["sparse"] < 0.8 * drift["free"], drift
    assert not torch.equal(sparse.image, every.image)  # the schedule changed the run


def test_lr_rampdown_changes_the_run_and_the_curve_is_recorded(dcgan):
    """lr_rampdown ramps the lr down over the last share of the steps (0: constant); the PSNR before each step is kept."""
    target = photo_like(seed=6)
    proj = project_model(dcgan, target, ProjectionOptions(steps=3))
    flat = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=6, lr=1e-2, lr_rampdown=0.0))
    ramp = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=6, lr=1e-2, lr_rampdown=0.5))
    assert flat.losses[:3] == ramp.losses[:3] and not torch.equal(flat.image, ramp.image)
    assert len(ramp.extra["psnr_curve"]) == 6 and ramp.extra["psnr_curve"][0] == pytest.approx(proj.psnr, abs=1e-3)


def test_identity_loss_uses_the_likeness_model(dcgan):
    from dgf_core.faces.likeness import Likeness
    from dgf_core.models.identity import IdentityConfig, IdentityNet

    torch.manual_seed(0)
    lk = Likeness(IdentityNet(IdentityConfig(resolution=16, channels=4, embed_dim=8, n_ids=3)), {})
    target = photo_like(seed=7)
    proj = project_model(dcgan, target, ProjectionOptions(steps=5))
    with pytest.raises(ProjectionError, match="crop recipe"):
        tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=2), likeness=lk)
    with_id = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=3, identity_weight=1.0), likeness=lk,
                   recipe="celeba-center-crop")
    without = tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=3, identity_weight=0.0), likeness=lk,
                   recipe="celeba-center-crop")
    assert with_id.losses[0] > without.losses[0]  # the identity term is in the loss


@pytest.mark.parametrize("kw, message", [
    ({"steps": -1}, "tuning steps"), ({"steps": 5000}, "tuning steps"), ({"steps": 2.5}, "tuning steps"),
    ({"lr": 0.0}, "lr"), ({"lr": "fast"}, "lr"), ({"locality_weight": -1.0}, "locality_weight"),
    ({"locality_batch": 0}, "locality_batch"), ({"locality_every": 0}, "locality_every"),
    ({"identity_weight": float("nan")}, "identity_weight"), ({"threads": 0}, "threads"), ({"threads": 1.5}, "threads"),
    ({"lr_rampdown": 1.5}, "lr_rampdown"), ({"lr_rampdown": -0.1}, "lr_rampdown"),
])
def test_bad_options(kw, message):
    with pytest.raises(ProjectionError, match=message):
        TuningOptions(**kw).validate()


def test_projection_and_tuning_run_on_their_own_thread_count_and_restore_torchs(dcgan):
    """`threads` (default 1: small networks, and a busy second core stalls every op) holds during the phase only."""
    target = photo_like(seed=4)
    seen = []
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        proj = project_model(dcgan, target, ProjectionOptions(steps=2),
                             progress=lambda *_: seen.append(("project", torch.get_num_threads())))
        tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=2),
             progress=lambda *_: seen.append(("tune", torch.get_num_threads())))
        tune(dcgan.generator, proj.latent, "z", target, TuningOptions(steps=1, threads=None),
             progress=lambda *_: seen.append(("torch", torch.get_num_threads())))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    assert seen == [("project", 1)] * 2 + [("tune", 1)] * 2 + [("torch", 2)] and after == 2
    with pytest.raises(ProjectionError, match="threads"):
        ProjectionOptions(threads=0).validate()


def test_overlapping_thread_overrides_restore_the_count_from_before_the_first():
    """Two requests in one process: A enters (saves 2), B enters, A leaves (must not restore 2 under B), B leaves
    (restores 2). With each block restoring its own saved count, B would have restored A's 1."""
    import threading

    from dgf_core.faces.projection import intra_op_threads

    old = torch.get_num_threads()
    torch.set_num_threads(2)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def request_a():
        with intra_op_threads(1):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def request_b():
        a_in.wait(10)
        with intra_op_threads(1):
            b_in.set()
            a_out.wait(10)
            seen["b, after a left"] = torch.get_num_threads()

    try:
        threads = [threading.Thread(target=f) for f in (request_a, request_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        seen["after both"] = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    assert seen == {"b, after a left": 1, "after both": 2}


def test_overall_progress_spans_every_phase_once():
    points = [overall_progress(p, f) for p in ("align", "project", "tune", "render") for f in (0.0, 0.5, 1.0)]
    assert points == sorted(points) and points[0] == 0.0 and points[-1] == 1.0
    assert overall_progress("render", 1.0, tuning=False) == 1.0 and overall_progress("project", 1.0, False) > 0.5


def test_memory_from_photo_tunes_and_writes_only_the_clip(dcgan, tmp_path, monkeypatch):
    """Privacy: neither the photo nor the tuned weights reach the disk: only the requested clip appears, and every
    way torch or safetensors could save weights fails loudly if called."""
    import tempfile

    import safetensors.torch

    def refuse(*a, **k):
        raise AssertionError("weights were about to be written")

    monkeypatch.setattr(torch, "save", refuse)
    monkeypatch.setattr(safetensors.torch, "save_file", refuse)
    monkeypatch.setattr(safetensors.torch, "save", refuse)
    import cv2  # the photo renderer's library: nothing of the photo goes through its writers either

    monkeypatch.setattr(cv2, "imwrite", refuse)
    monkeypatch.setattr(cv2, "VideoWriter", refuse)
    work, tmp, outdir = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "out"
    for d in (work, tmp, outdir):
        d.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    arr = (photo_like(seed=9)[0].permute(1, 2, 0).add(1).mul(127.5).round().byte().numpy())
    photo = Image.fromarray(arr).resize((40, 40))
    seen = []
    res = memory_from_photo(dcgan, photo, MemorySpec(frames=4, fps=8), [outdir / "m.gif"],
                            projection=ProjectionOptions(steps=5), tuning=TuningOptions(steps=20, lr=1e-2), align=False,
                            progress=lambda phase, frac, text: seen.append(phase))
    assert sorted(set(seen), key=seen.index) == ["align", "project", "tune", "render"]
    assert res.psnr_tuned > res.psnr_projection and res.psnr == res.psnr_tuned
    assert res.tuned.shape == res.projection.shape == res.aligned.shape == (3, 16, 16)
    assert res.likeness_tuned is None  # no likeness model given
    tuning = res.recipe["tuning"]
    assert tuning["steps"] == 20 and tuning["regenerable_without_photo"] is False and "photo" in tuning["note"]
    assert np.allclose(np.array(res.recipe["latent"]), res.latent.numpy(), atol=1e-4)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["out/m.gif"]
    assert res.recipe["render"] == "photo" and res.recipe["regenerable_without_photo"] is False  # the default


def test_memory_from_photo_without_tuning_is_regenerable(dcgan, tmp_path):
    photo = Image.fromarray(np.full((40, 40, 3), 90, np.uint8))
    res = memory_from_photo(dcgan, photo, MemorySpec(frames=2, fps=4), [tmp_path / "m.gif"],
                            projection=ProjectionOptions(steps=2), tuning=TuningOptions(steps=0), align=False)
    assert "tuning" not in res.recipe and res.tuned is None and res.psnr == res.psnr_projection
    with pytest.raises(ValueError, match="edit directions"):
        memory_from_photo(dcgan, photo, MemorySpec(frames=2, fps=4, edit={"age": 1.0}), [tmp_path / "n.gif"],
                          projection=ProjectionOptions(steps=2), align=False)
    assert not (tmp_path / "n.gif").exists()


def test_cli_project_tunes_for_the_memory_and_the_reconstruction(dcgan, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(dcgan.path.parent))
    photo = tmp_path / "crop.png"
    arr = (photo_like(seed=11)[0].permute(1, 2, 0).add(1).mul(127.5).round().byte().numpy())
    Image.fromarray(arr).resize((40, 40)).save(photo)
    base = ["project", str(photo), "--model", "tiny-dcgan", "--out", str(tmp_path / "lat.npz"), "--no-align", "--steps", "3"]
    assert main(base + ["--tune-steps", "4", "--save-memory", str(tmp_path / "m.gif"), "--frames", "3",
                        "--save-reconstruction", str(tmp_path / "rec.png")]) == 0
    out = capsys.readouterr()
    assert "tuned PSNR" in out.out and "m.gif" in out.out and (tmp_path / "m.gif").stat().st_size > 0
    assert Image.open(tmp_path / "rec.png").size == (16, 16) and (tmp_path / "lat.npz").exists()
    assert main(base + ["--dry-run", "--tune-steps", "7"]) == 0
    assert json.loads(capsys.readouterr().out)["project"]["tuning"]["steps"] == 0  # nothing would use the tuned copy
    assert main(base + ["--tune-steps", "2"]) == 0
    assert "no tuning" in capsys.readouterr().err
    assert main(base + ["--edit", "age=1"]) == 2
    assert "--save-memory" in capsys.readouterr().err
    assert main(base + ["--tune-steps", "-3"]) == 2
    assert "tuning steps" in capsys.readouterr().err


def test_stylegan_tuning_maps_the_latent_statistics_once_and_tunes_as_before(stylegan, monkeypatch):
    """The typical w distance comes from 4,096 mapped latents: once per tuning, not at every locality step (it was a
    third of a tuning step), with the locality latents exactly those computed from scratch each time."""
    import dgf_core.faces.tuning as tuning

    target = photo_like(seed=3)
    proj = project_model(stylegan, target, ProjectionOptions(steps=5))
    opts = TuningOptions(steps=6, lr=1e-2, locality_weight=0.1, locality_every=1)
    big_batches = []
    hook = stylegan.generator.mapping.register_forward_pre_hook(
        lambda module, args: big_batches.append(len(args[0])) if len(args[0]) > 64 else None)
    try:
        fast = tune(stylegan.generator, proj.latent, proj.space, target, opts)
        assert big_batches == [4096]
        locality = tuning.locality_latents
        monkeypatch.setattr(tuning, "locality_latents", lambda *a: locality(*a[:6]))  # the distance each step
        slow = tune(stylegan.generator, proj.latent, proj.space, target, opts)
    finally:
        hook.remove()
    assert len(big_batches) == 1 + 1 + opts.steps
    assert torch.equal(fast.image, slow.image)
