"""The upscaler's detail control: network interpolation between its PSNR and GAN ends, the two-ended checkpoint, the
CLI's --detail, the GAN phase started from L1 weights, and the export of its GAN end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgf_core.checkpoint import DETAIL_FILE, CheckpointError, load_model, save_detail_weights
from dgf_core.cli import main
from dgf_core.generation.compare import upscaled_picture
from dgf_core.generation.upscale import Upscaler, blend_weights, check_detail
from test_upscaler import TINY, make_hr_folder, random_faces, save_tiny_upscaler, smooth_faces, tiny_generator


def two_ended(folder: Path) -> Path:
    """A tiny upscaler (PSNR end: seed 0) with a GAN end (seed 1) in detail.safetensors."""
    save_tiny_upscaler(folder, seed=0)
    save_detail_weights(folder, tiny_generator(1), {"phase": "gan", "note": "test"})
    return folder


def fp16_rounded(g: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.half().float() for k, v in g.state_dict().items()}


# ---- the blend ---------------------------------------------------------------------------------------------------

def test_blend_ends_are_exact_and_middle_is_the_mean():
    a, b = tiny_generator(0).state_dict(), tiny_generator(1).state_dict()
    at0, at1, half = blend_weights(a, b, 0), blend_weights(a, b, 1.0), blend_weights(a, b, 0.5)
    assert all(torch.equal(at0[k], a[k]) for k in a) and all(torch.equal(at1[k], b[k]) for k in a)
    k = "head.weight"
    assert torch.allclose(half[k], (a[k] + b[k]) / 2) and not torch.equal(half[k], a[k])
    assert blend_weights(a, b, 0.5)["head.weight"].data_ptr() != a["head.weight"].data_ptr()  # inputs untouched
    with pytest.raises(ValueError, match="differ in their tensors"):
        blend_weights(a, {k: v for k, v in b.items() if k != "head.bias"}, 0.5)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5, "0.5", None, True, float("inf"), [0.5]])
def test_bad_detail_values_are_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="detail must be a number from 0 to 1"):
        check_detail(bad)
    up = Upscaler.from_pretrained(two_ended(tmp_path / "up"))
    with pytest.raises(ValueError, match="detail must be a number from 0 to 1"):
        up.upscale(random_faces(1, 8), 4, bad)


def test_check_detail_accepts_ints_floats_and_numpy():
    assert [check_detail(v) for v in (0, 1, 0.25, np.float32(0.5))] == [0.0, 1.0, 0.25, 0.5]


# ---- the two-ended checkpoint ------------------------------------------------------------------------------------

def test_two_ended_checkpoint_round_trip(tmp_path):
    folder = two_ended(tmp_path / "up")
    meta = json.loads((folder / "config.json").read_text())
    assert meta["detail"]["file"] == DETAIL_FILE and meta["detail"]["card"]["note"] == "test"
    assert len(meta["detail"]["weights_sha256"]) == 64
    up = Upscaler.from_pretrained(folder)
    assert up.has_detail
    gan = fp16_rounded(tiny_generator(1))  # stored as fp16, like the PSNR end
    assert all(torch.equal(up.detail_weights[k], gan[k]) for k in gan)
    assert load_model(folder).weights_sha256 == meta["weights_sha256"]  # the PSNR end is untouched


def test_detail_zero_is_todays_output_and_one_is_the_gan_end(tmp_path):
    plain = Upscaler.from_pretrained(save_tiny_upscaler(tmp_path / "plain"))
    up = Upscaler.from_pretrained(two_ended(tmp_path / "up"))
    gan_only = save_tiny_upscaler(tmp_path / "gan", seed=1)
    x = smooth_faces(2, 16)
    assert torch.equal(up.upscale(x, 4, 0), plain.upscale(x, 4))
    assert torch.equal(up.upscale(x, 4, 1), Upscaler.from_pretrained(gan_only).upscale(x, 4))
    mid = up.upscale(x, 4, 0.5)
    assert not torch.equal(mid, plain.upscale(x, 4)) and not torch.equal(mid, up.upscale(x, 4, 1))
    assert torch.equal(up.upscale(x, 2, 0.5), up.upscale(x, 2, 0.5))  # cached: same net, same pixels
    assert up.network(0.5) is up.network(0.5) and up.network(0) is up.network(0.0)


def test_blend_cache_is_bounded(tmp_path):
    up = Upscaler.from_pretrained(two_ended(tmp_path / "up"))
    up.detail_cache = 2
    first = up.network(0.1)
    up.network(0.2), up.network(0.3)
    assert len(up._blended) == 2 and up.network(0.1) is not first


def test_model_without_detail_weights(tmp_path):
    up = Upscaler.from_pretrained(save_tiny_upscaler(tmp_path / "up"))
    assert not up.has_detail
    assert up.upscale(random_faces(1, 8), 4, 0).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="this upscaler has no detail weights"):
        up.upscale(random_faces(1, 8), 4, 0.5)
    with pytest.raises(ValueError, match="this upscaler has no detail weights"):
        Upscaler.bicubic().upscale(random_faces(1, 8), 4, 1)


def test_corrupt_or_mismatched_detail_weights_are_refused(tmp_path):
    folder = two_ended(tmp_path / "up")
    (folder / DETAIL_FILE).write_bytes((folder / DETAIL_FILE).read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError, match="does not match the sha256"):
        Upscaler.from_pretrained(folder)
    from dgf_core.models.upscaler import Generator, UpscalerConfig

    with pytest.raises(CheckpointError, match="do not match"):
        save_detail_weights(folder, Generator(UpscalerConfig(**{**TINY, "channels": 12})), {})


def test_upscaled_picture_records_detail(tmp_path):
    up = Upscaler.from_pretrained(two_ended(tmp_path / "up"))
    pic = Image.fromarray(random_faces(1, 8)[0].permute(1, 2, 0).numpy())
    r0 = upscaled_picture(up, pic, 4).recipe
    r1 = upscaled_picture(up, pic, 4, detail=0.75).recipe
    assert r0["detail"] == 0.0 and "detail_weights_sha256" not in r0
    assert r1["detail"] == 0.75 and r1["detail_weights_sha256"] == up.detail_sha256 and len(up.detail_sha256) == 64


# ---- CLI --------------------------------------------------------------------------------------------------------

@pytest.fixture
def detail_weights(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "weights"
    two_ended(root / "two-ended")
    save_tiny_upscaler(root / "one-ended")
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(root))
    return root


def test_cli_upscale_detail_is_recorded(tmp_path, detail_weights, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(smooth_faces(1, 16)[0].permute(1, 2, 0).numpy()).save(src)
    outs = {}
    for d in ("0", "0.6"):
        out = tmp_path / f"out{d}.png"
        assert main(["upscale", str(src), "--model", "two-ended", "--detail", d, "--out", str(out)]) == 0
        assert json.loads(capsys.readouterr().out.split("\nwrote")[0])["upscale"]["detail"] == float(d)
        with Image.open(out) as im:
            outs[d] = (json.loads(im.text["dgf_upscale"]), torch.from_numpy(np.asarray(im).copy()))
    assert outs["0"][0]["detail"] == 0.0 and outs["0.6"][0]["detail"] == 0.6
    assert not torch.equal(outs["0"][1], outs["0.6"][1])


@pytest.mark.parametrize("model, detail, message", [
    ("one-ended", "0.5", "this upscaler has no detail weights"),
    ("two-ended", "nan", "detail must be a number from 0 to 1"),
    ("two-ended", "1.01", "detail must be a number from 0 to 1"),
    ("two-ended", "-1", "detail must be a number from 0 to 1"),
    ("bicubic", "1", "this upscaler has no detail weights"),
])
def test_cli_upscale_bad_detail(tmp_path, detail_weights, capsys, model, detail, message):
    src = tmp_path / "in.png"
    Image.new("RGB", (12, 12)).save(src)
    assert main(["upscale", str(src), "--model", model, f"--detail={detail}", "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()
