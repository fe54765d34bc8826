"""The upscaler: model shapes, the inference object, SR data and degradation, metrics, training, CLI."""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgf_core.checkpoint import CheckpointError, save_model
from dgf_core.cli import main
from dgf_core.evaluation.sr_metrics import clip_stability, temporal_change
from dgf_core.generation.upscale import Upscaler, bicubic_upscale, check_factor
from dgf_core.images import psnr, ssim
from dgf_core.models.upscaler import Discriminator, Generator, UpscalerConfig, bicubic
from dgf_core.training.sr_data import (
    NO_DEGRADATION,
    Degradation,
    bicubic_down,
    degrade,
    gaussian_blur,
    load_hr_faces,
    quantize,
    random_patches,
    shift_zoom_clip,
    sr_batch,
)

TINY = dict(channels=8, growth=4, blocks1=1, channels2=4, growth2=4, blocks2=1, channels4=4, d_channels=4, d_layers=2)


def tiny_generator(seed: int = 0) -> Generator:
    """A tiny generator whose to-RGB layers are not zero (so it differs from bicubic)."""
    torch.manual_seed(seed)
    g = Generator(UpscalerConfig(**TINY))
    with torch.no_grad():
        for conv in (g.to_rgb2, g.to_rgb4):
            conv.weight.normal_(0, 0.05)
    return g.eval()


def save_tiny_upscaler(folder: Path, seed: int = 0) -> Path:
    g = tiny_generator(seed)
    return save_model(folder, "upscaler", g.cfg, g, Discriminator(g.cfg), {"description": "tiny test upscaler"})


def random_faces(n: int, side: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8)


def smooth_faces(n: int, side: int, seed: int = 0) -> torch.Tensor:
    """Smooth uint8 images (upsampled noise): content an upscaler can be judged on."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, side // 8, side // 8, generator=g)
    return torch.nn.functional.interpolate(low, size=(side, side), mode="bilinear").mul(255).round().to(torch.uint8)


# ---- model ---------------------------------------------------------------------------------------------------

def test_generator_shapes_and_factors():
    g = tiny_generator()
    x = torch.rand(2, 3, 8, 12) * 2 - 1
    with torch.no_grad():
        assert g(x, 2).shape == (2, 3, 16, 24)
        assert g(x, 4).shape == (2, 3, 32, 48)
        out2, out4 = g.forward_both(x)
        assert torch.equal(out2, g(x, 2)) and torch.equal(out4, g(x, 4))
    with pytest.raises(ValueError, match="factor must be one of"):
        g(x, 3)


def test_untrained_generator_is_exactly_bicubic():
    g = Generator(UpscalerConfig(**TINY)).eval()
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x, 4), bicubic(x, 4))
        assert torch.equal(g(x, 2), bicubic(x, 2))
        assert not torch.equal(tiny_generator()(x, 4), bicubic(x, 4))


def test_discriminator_returns_logits_and_features():
    cfg = UpscalerConfig(**TINY)
    logits, feats = Discriminator(cfg)(torch.zeros(3, 3, 32, 32))
    assert logits.shape == (3, 1, 8, 8)
    assert [f.shape[-1] for f in feats] == [16, 8]


def test_config_validation():
    with pytest.raises(ValueError, match="channels must be positive"):
        UpscalerConfig(channels=0)


# ---- inference object ----------------------------------------------------------------------------------------

def test_check_factor():
    assert [check_factor(v) for v in (2, 4, "x2", "4", "off", "x1", 1)] == [2, 4, 2, 4, 1, 1, 1]
    for bad in (3, "x8", "big", None, 0):
        with pytest.raises(ValueError, match="off, 2 or 4"):
            check_factor(bad)


def test_upscale_shapes_determinism_and_batch_independence(tmp_path):
    up = Upscaler.from_pretrained(save_tiny_upscaler(tmp_path / "up"))
    imgs = random_faces(5, 12)
    out4 = up.upscale(imgs, 4)
    assert out4.dtype == torch.uint8 and out4.shape == (5, 3, 48, 48)
    assert up.upscale(imgs, 2).shape == (5, 3, 24, 24)
    assert torch.equal(up.upscale(imgs, "off"), imgs)
    assert torch.equal(up.upscale(imgs, 4), out4)  # same input, same pixels
    assert torch.equal(up.upscale(imgs[3:4], 4), out4[3:4])  # a frame alone == the frame inside a batch
    assert not torch.equal(out4, bicubic_upscale(imgs, 4))


def test_upscale_output_slice_is_stable(tmp_path):
    up = Upscaler.from_pretrained(save_tiny_upscaler(tmp_path / "up"))
    out = up.upscale(smooth_faces(1, 16), 4)[0, 0, 30, 28:34].tolist()
    expected = [93, 96, 94, 94, 98, 102]  # recorded from this seeded tiny model
    assert np.abs(np.array(out) - np.array(expected)).max() <= 1, out


def test_save_load_round_trip(tmp_path):
    g = tiny_generator(3)
    folder = save_model(tmp_path / "up", "upscaler", g.cfg, g, None, {"licence": "test"})
    up = Upscaler.from_pretrained(folder)
    assert up.model.family.kind == "upscaler" and up.model.card["licence"] == "test"
    ref = tiny_generator(3)
    with torch.no_grad():  # the checkpoint stores fp16: the reference gets the same rounding
        for p in ref.parameters():
            p.copy_(p.half().float())
    x = random_faces(2, 8)
    with torch.no_grad():
        expected = ref(x.float() / 127.5 - 1, 4).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(up.upscale(x, 4), expected)


def test_loading_a_generator_as_upscaler_is_refused(tmp_path):
    from conftest import make_tiny_dcgan

    with pytest.raises(CheckpointError, match="not an upscaler"):
        Upscaler.from_pretrained(make_tiny_dcgan(tmp_path / "dcgan"))


def test_bad_inputs_are_refused():
    up = Upscaler.bicubic()
    with pytest.raises(ValueError, match="uint8 images"):
        up.upscale(torch.zeros(1, 3, 8, 8), 4)
    with pytest.raises(ValueError, match="4..512 pixels"):
        up.upscale(torch.zeros(1, 3, 8, 600, dtype=torch.uint8), 4)


def test_bicubic_upscaler_matches_pil():
    img = random_faces(1, 10)[0]
    pil = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((40, 40), Image.Resampling.BICUBIC)
    out = Upscaler.bicubic().upscale_pil(Image.fromarray(img.permute(1, 2, 0).numpy()), 4)
    assert np.array_equal(np.asarray(out), np.asarray(pil))


# ---- data and degradation ------------------------------------------------------------------------------------

def test_degradation_shapes_grid_and_seeding():
    hr = torch.rand(4, 3, 32, 32) * 2 - 1
    a = degrade(hr, 4, torch.Generator().manual_seed(1))
    b = degrade(hr, 4, torch.Generator().manual_seed(1))
    c = degrade(hr, 4, torch.Generator().manual_seed(2), Degradation(max_blur=2.0, max_noise=0.05, p_blur=1, p_noise=1))
    assert a.shape == (4, 3, 8, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    levels = a.add(1).mul(127.5)
    assert torch.allclose(levels, levels.round(), atol=1e-4) and a.min() >= -1 and a.max() <= 1
    clean = degrade(hr, 4, torch.Generator().manual_seed(1), NO_DEGRADATION)
    assert torch.equal(clean, quantize(bicubic_down(hr, 4)))
    with pytest.raises(ValueError):
        Degradation(max_blur=-1)


def test_gaussian_blur_per_image():
    x = torch.rand(2, 3, 16, 16)
    y = gaussian_blur(x, torch.tensor([0.0, 1.5]))
    assert torch.allclose(y[0], x[0])
    assert y[1].std() < x[1].std() * 0.7
    flat = torch.full((1, 3, 9, 9), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([2.0])), flat, atol=1e-6)


def test_random_patches_and_batch():
    faces = random_faces(3, 40)
    g = torch.Generator().manual_seed(0)
    p = random_patches(faces, 5, 16, g)
    assert p.shape == (5, 3, 16, 16) and p.min() >= -1 and p.max() <= 1
    lr, hr2, hr = sr_batch(faces, 4, 32, g)
    assert lr.shape == (4, 3, 8, 8) and hr2.shape == (4, 3, 16, 16) and hr.shape == (4, 3, 32, 32)


def _heldout_names(k: int, held: bool) -> list[str]:
    names, i = [], 0
    while len(names) < k:
        n = f"{i:06d}.jpg"
        if (zlib.crc32(n.encode()) % 20 == 0) == held:
            names.append(n)
        i += 1
    return names


def make_hr_folder(root: Path, n_train: int = 4, n_held: int = 2, side: int = 200) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in _heldout_names(n_train, False) + _heldout_names(n_held, True):
        low = rng.integers(0, 256, (side // 10, side // 10, 3), dtype=np.uint8)
        Image.fromarray(low).resize((side, side), Image.Resampling.BILINEAR).save(root / name, quality=95)
    return root


def test_load_hr_faces_split_and_minimum_size(tmp_path):
    folder = make_hr_folder(tmp_path / "faces")
    Image.new("RGB", (100, 120)).save(folder / "small.jpg")  # too small to be a 4x target
    train, paths = load_hr_faces(folder, "train")
    held, hpaths = load_hr_faces(folder, "heldout")
    assert train.shape == (4, 3, 176, 176) and train.dtype == torch.uint8
    assert held.shape[0] == 2 and not set(paths) & set(hpaths)
    assert all(p.name != "small.jpg" for p in paths)


def test_shift_zoom_clip_is_smooth():
    face = smooth_faces(1, 64)[0]
    clip = shift_zoom_clip(face, 24, 32)
    assert clip.shape == (24, 3, 32, 32) and clip.dtype == torch.uint8
    step = temporal_change(clip)
    assert 0 < step < 10
    assert step < temporal_change(clip[::4])  # bigger jumps between frames further apart


# ---- metrics ---------------------------------------------------------------------------------------------------

def test_psnr_ssim_and_temporal_change_values():
    a = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    b = torch.full_like(a, 16)
    assert psnr(a, b, channel="rgb").item() == pytest.approx(10 * np.log10(255**2 / 256), abs=1e-6)
    x = smooth_faces(2, 32)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    noisy = (x.int() + torch.randint(-30, 31, x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 255).to(torch.uint8)
    assert (ssim(x, noisy) < 0.9).all() and (psnr(x, noisy, border=2) < 30).all()
    clip = torch.stack([torch.full((3, 4, 4), v, dtype=torch.uint8) for v in (0, 10, 0, 10)])
    assert temporal_change(clip) == 10.0


def test_clip_stability_report(tmp_path):
    up = Upscaler.from_pretrained(save_tiny_upscaler(tmp_path / "up"))
    clip = shift_zoom_clip(smooth_faces(1, 64)[0], 12, 16)
    res = clip_stability(up, clip, 4)
    assert res["repeat_identical"] and res["frame_alone_identical"]
    assert res["change_bicubic"] > 0 and 0.5 < res["ratio_to_bicubic"] < 2
    assert clip_stability(Upscaler.bicubic(), clip, 4)["ratio_to_bicubic"] == 1.0
    short = clip_stability(up, clip[:4], 4)  # the shortest clip the CLI takes (--clip-frames 4)
    assert short["frames"] == 4 and short["frame_alone_identical"]


# ---- training ------------------------------------------------------------------------------------------------

def test_train_upscaler_tiny_run_and_resume(tmp_path):
    from dgf_core.training.upscaler import UpscalerTrainOptions, train_upscaler

    data = make_hr_folder(tmp_path / "faces")
    opts = UpscalerTrainOptions(data=[str(data)], out=str(tmp_path / "run"), model=TINY, patch=16, batch_size=2,
                                l1_steps=3, gan_steps=2, eval_faces=2, eval_every=2, checkpoint_every=1, threads=1)
    lines = []
    result = train_upscaler(opts, log=lines.append)
    assert result == tmp_path / "run" / "gan"
    for phase in ("l1", "gan"):
        up = Upscaler.from_pretrained(tmp_path / "run" / phase)
        assert up.upscale(random_faces(1, 8), 4).shape == (1, 3, 32, 32)
        assert up.model.card["training"]["phase"] == phase and "non-commercial" in up.model.card["licence"]
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 3, 4, 5] and "d" in log[-1] and "psnr_y" in log[0]
    # resume with more GAN steps: continues from step 5, does not redo the L1 phase
    opts.gan_steps, opts.resume = 3, True
    lines.clear()
    train_upscaler(opts, log=lines.append)
    assert any("resumed at step 5" in x for x in lines) and not any("l1 done" in x for x in lines)
    assert json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])["step"] == 6


def test_train_options_validation():
    from dgf_core.training.upscaler import UpscalerTrainOptions

    with pytest.raises(ValueError, match="--patch"):
        UpscalerTrainOptions(data=["x"], out="y", patch=18).validate()
    with pytest.raises(ValueError, match="not both 0"):
        UpscalerTrainOptions(data=["x"], out="y", l1_steps=0, gan_steps=0).validate()


# ---- CLI --------------------------------------------------------------------------------------------------------

@pytest.fixture
def weights(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "weights"
    save_tiny_upscaler(root / "tiny-up")
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(root))
    return root


def test_cli_upscale_writes_png(tmp_path, weights, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(random_faces(1, 12)[0].permute(1, 2, 0).numpy()).save(src)
    assert main(["upscale", str(src), "--model", "tiny-up", "--out", str(tmp_path / "out.png")]) == 0
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (48, 48) and json.loads(im.text["dgf_upscale"])["factor"] == 4
        assert "invented" in im.text["Description"] and "in.png" not in im.text["dgf_upscale"]  # as the app: no file name
    assert main(["upscale", str(src), "--model", "bicubic", "--factor", "2", "--out", str(tmp_path / "b.png")]) == 0
    assert Image.open(tmp_path / "b.png").size == (24, 24)
    assert main(["upscale", str(src), "--model", "tiny-up", "--out", str(tmp_path / "dry.png"), "--dry-run"]) == 0
    assert not (tmp_path / "dry.png").exists()


@pytest.mark.parametrize("case, message", [
    ("not_image", "not an image"), ("missing_model", "no model folder"), ("factor", "off, 2 or 4"),
    ("out_suffix", "must be a .png"), ("too_big", "at most 512 pixels"), ("missing_input", "no such file"),
])
def test_cli_upscale_user_errors(tmp_path, weights, capsys, case, message):
    src = tmp_path / "in.png"
    Image.new("RGB", (600, 20) if case == "too_big" else (12, 12)).save(src)
    if case == "not_image":
        src.write_bytes(b"not an image at all")
    args = {"model": "tiny-up", "factor": "4", "out": str(tmp_path / "o.png"), "input": str(src)}
    args.update({"missing_model": {"model": "nope"}, "factor": {"factor": "3"}, "out_suffix": {"out": "o.jpg"},
                 "missing_input": {"input": str(tmp_path / "none.png")}}.get(case, {}))
    rc = main(["upscale", args["input"], "--model", args["model"], "--factor", args["factor"], "--out", args["out"]])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_cli_train_upscaler_dry_run_and_errors(tmp_path, capsys):
    data = make_hr_folder(tmp_path / "faces", 1, 0)
    assert main(["train-upscaler", "--data", str(data), "--out", str(tmp_path / "run"), "--model", "channels=16", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"]["channels"] == 16 and not (tmp_path / "run").exists()
    assert main(["train-upscaler", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    assert "data path does not exist" in capsys.readouterr().err
    assert main(["train-upscaler", "--data", str(data), "--out", "r", "--patch", "30"]) == 2
    assert main(["train-upscaler", "--data", str(data), "--out", "r", "--model", "width=3", "--dry-run"]) == 2
    assert "unknown upscaler config fields" in capsys.readouterr().err


def test_cli_evaluate_upscaler(tmp_path, weights, capsys):
    data = make_hr_folder(tmp_path / "faces", 0, 2)
    out = tmp_path / "eval.json"
    from conftest import make_tiny_dcgan

    make_tiny_dcgan(weights / "tiny-dcgan")
    assert main(["evaluate-upscaler", "--model", "bicubic", "--model", "tiny-up", "--data", str(data), "--faces", "2",
                 "--json", str(out), "--walk-model", "tiny-dcgan", "--clip-frames", "8"]) == 0
    res = json.loads(out.read_text())
    entry = res["folders"][str(data)]
    assert entry["faces"] == 2
    bic = entry["bicubic"]["x4_clean"]
    assert bic["psnr_y"] == bic["bicubic_psnr_y"] and bic["psnr_y_gain_db"] == 0
    assert res["temporal"]["bicubic"]["ratio_to_bicubic"] == 1.0
    assert res["temporal"]["tiny-up"]["repeat_identical"] is True
    walk = res["temporal_latent_walk"]
    assert walk["frames"] == 8 and walk["size"] == [16, 16] and walk["tiny-up"]["frame_alone_identical"] is True
    assert main(["evaluate-upscaler", "--model", "nope", "--data", str(data)]) == 2


def test_fast_path_matches_reference_path(tmp_path):
    folder = save_tiny_upscaler(tmp_path / "up")
    fast, ref = Upscaler.from_pretrained(folder), Upscaler.from_pretrained(folder, fast=False)
    imgs = smooth_faces(3, 16)
    for f in (2, 4):
        a, b = fast.upscale(imgs, f).int(), ref.upscale(imgs, f).int()
        assert (a - b).abs().max() <= 1 and (a != b).float().mean() < 0.01
    assert fast.model.generator.head.weight.is_contiguous()  # the loaded module itself is left as it was


def test_ssim_matches_direct_2d_window_reference():
    import torch.nn.functional as F

    from dgf_core.images import _gaussian_taps, rgb_to_y

    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (2, 3, 24, 24), generator=g, dtype=torch.uint8)
    b = (a.int() + torch.randint(-40, 41, a.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    x, y = rgb_to_y(a)[:, None], rgb_to_y(b)[:, None]
    t = _gaussian_taps()
    w = (t[:, None] * t[None])[None, None]  # the 11x11 window in float64, not separated
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = F.conv2d(x, w), F.conv2d(y, w)
    saa, sbb, sab = F.conv2d(x * x, w) - ma**2, F.conv2d(y * y, w) - mb**2, F.conv2d(x * y, w) - ma * mb
    ref = (((2 * ma * mb + c1) * (2 * sab + c2)) / ((ma**2 + mb**2 + c1) * (saa + sbb + c2))).flatten(1).mean(1)
    assert torch.allclose(ssim(a, b), ref, atol=1e-5)
    assert (ref < 0.99).all()


# ---- optional diffusers backend -----------------------------------------------------------------------------------

def save_tiny_ldm_sr(folder: Path, safe: bool = True) -> Path:
    """A tiny, randomly initialised LDMSuperResolutionPipeline (x4: three VQ blocks), saved locally."""
    diffusers = pytest.importorskip("diffusers")
    from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion_superresolution import (
        LDMSuperResolutionPipeline,
    )

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=6, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                                 down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)
    vq = diffusers.VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                           up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), layers_per_block=1,
                           latent_channels=3, norm_num_groups=4, num_vq_embeddings=16, vq_embed_dim=3)
    LDMSuperResolutionPipeline(vqvae=vq, unet=unet, scheduler=diffusers.DDIMScheduler()).save_pretrained(folder, safe_serialization=safe)
    return folder


def test_diffusers_backend_tiny_pipeline(tmp_path):
    from dgf_core.generation.upscale import DiffusersUpscaler

    folder = save_tiny_ldm_sr(tmp_path / "ldm-sr")
    up = Upscaler.from_pretrained(folder)
    assert isinstance(up, DiffusersUpscaler) and up.native_factor == 4
    up.steps = 1
    imgs = random_faces(2, 8)
    out = up.upscale(imgs, 4)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(up.upscale(imgs[1:2], 4), out[1:2])  # deterministic, frame by frame
    assert up.upscale(imgs[:1], 2).shape == (1, 3, 16, 16)


def test_diffusers_backend_refuses_pickles_and_unknown_pipelines(tmp_path):
    folder = save_tiny_ldm_sr(tmp_path / "pickled", safe=False)
    assert list(folder.rglob("*.bin")) and not list(folder.rglob("*.safetensors"))
    with pytest.raises(CheckpointError, match="safetensors weights are required"):
        Upscaler.from_pretrained(folder)
    other = tmp_path / "ddpm"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    with pytest.raises(CheckpointError, match="'DDPMPipeline' is not supported"):
        Upscaler.from_pretrained(other)


# ---- the shipped weights (run whenever weights/upscaler-x4 is in the repository) -------------------------------

SHIPPED = Path(__file__).resolve().parent.parent / "weights" / "upscaler-x4"


@pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="weights/upscaler-x4 not in this checkout")
def test_shipped_upscaler_weights():
    up = Upscaler.from_pretrained(SHIPPED)  # verifies the sha256 of model.safetensors
    card = up.model.card
    assert "non-commercial" in card["licence"] and card["shipped_phase"] in ("l1", "gan")
    assert card["metrics"]["x4_clean_all_faces"]["l1"]["psnr_y_gain_db"] >= 1.5
    assert (SHIPPED / "model.safetensors").stat().st_size < 10 * 2**20
    face = smooth_faces(2, 64)
    out4, out2 = up.upscale(face, 4), up.upscale(face, 2)
    assert out4.shape == (2, 3, 256, 256) and out2.shape == (2, 3, 128, 128)
    assert torch.equal(up.upscale(face[1:], 4), out4[1:])
    bic = bicubic_upscale(face, 4)
    assert 25 < psnr(out4, bic).min() < 60  # close to bicubic on smooth content, but not bicubic itself
