"""The upscaler's detail control: network interpolation between its PSNR and GAN ends, the two-ended checkpoint, the
CLI's --detail, the GAN phase started from L1 weights, and the export of its GAN end."""
from __future__ import annotations

import json
import math
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
    assert "detail" not in r0 and "detail_weights_sha256" not in r0  # detail 0: the recipe of before
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
    assert "detail" not in outs["0"][0] and outs["0.6"][0]["detail"] == 0.6
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


# ---- training the GAN end and exporting it ------------------------------------------------------------------

def test_relativistic_losses():
    from dgf_core.training.losses import d_relativistic_loss, g_relativistic_loss

    real, fake = torch.tensor([[3.0, 2.0]]), torch.tensor([[-2.0, -3.0]])
    # D right by a margin of 5: small loss for D, large for G; swapping the sets swaps them
    assert d_relativistic_loss(real, fake) < 0.01 < 4.9 < g_relativistic_loss(real, fake)
    assert torch.isclose(d_relativistic_loss(fake, real), g_relativistic_loss(real, fake))
    same = torch.zeros(1, 4)
    assert torch.isclose(d_relativistic_loss(same, same), torch.tensor(math.log(2)))


def gan_end_options(tmp_path: Path, data: Path, **kw):
    from dgf_core.training.upscaler import UpscalerTrainOptions

    return UpscalerTrainOptions(data=[str(data)], out=str(tmp_path / "run"), patch=16, batch_size=2, l1_steps=0, gan_steps=2,
                                init_from=str(save_tiny_upscaler(tmp_path / "up")), gan_loss="relativistic",
                                pixel_weight=0.1, fm_weight=1.0, adv_weight=0.05, eval_faces=2, eval_every=2,
                                checkpoint_every=100, checkpoint_minutes=1e-6, log_every=1, threads=1, **kw)


def test_gan_phase_from_l1_weights_runs_resumes_and_exports(tmp_path):
    from dgf_core.checkpoint import read_training_info
    from dgf_core.training.upscaler import export_detail, train_upscaler

    data = make_hr_folder(tmp_path / "faces")
    opts = gan_end_options(tmp_path, data)
    lines: list[str] = []
    train_upscaler(opts, log=lines.append)
    assert any("initialized the generator and discriminator" in x for x in lines) and not any("l1 done" in x for x in lines)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["phase"] == "gan" for r in log)
    assert {"d", "adv", "fm", "l1"} <= set(log[0]) and "sharpness_ratio" in log[-1]
    info = read_training_info(tmp_path / "run" / "state.safetensors")
    assert info["step"] == 2 and info["phase_start"]["gan"] == 0 and info["done"] == ["l1", "gan"]
    # the generator moved away from the L1 weights it started from
    started = Upscaler.from_pretrained(tmp_path / "up")
    trained = Upscaler.from_pretrained(tmp_path / "run" / "gan")
    x = smooth_faces(1, 16)
    assert not torch.equal(started.upscale(x, 4), trained.upscale(x, 4))
    # the same command with --resume and more steps continues at step 2 (not from the L1 weights again)
    opts.gan_steps, opts.resume = 3, True
    lines.clear()
    train_upscaler(opts, log=lines.append)
    assert any("resumed at step 2" in x for x in lines) and not any("initialized" in x for x in lines)
    assert [json.loads(x)["step"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
    # export: the run's EMA becomes the folder's detail end, and detail 1 reproduces the run's own EMA model
    path = export_detail(tmp_path / "run", tmp_path / "up", log=lines.append)
    assert path == tmp_path / "up" / DETAIL_FILE
    card = json.loads((tmp_path / "up" / "config.json").read_text())["detail"]["card"]
    assert card["steps"] == 3 and card["images_seen"] == 6 and "relativistic" in card["loss"]
    assert card["quick_eval_heldout_128"]["step"] == 3 and {"minutes", "date", "machine"} <= set(card)
    up = Upscaler.from_pretrained(tmp_path / "up")
    assert torch.equal(up.upscale(x, 4, 0), started.upscale(x, 4))
    assert torch.equal(up.upscale(x, 4, 1), Upscaler.from_pretrained(tmp_path / "run" / "gan").upscale(x, 4))


def test_resume_drops_log_lines_past_the_state(tmp_path):
    from dgf_core.training.upscaler import train_upscaler

    data = make_hr_folder(tmp_path / "faces")
    opts = gan_end_options(tmp_path, data)
    train_upscaler(opts, log=lambda *_: None)
    with (tmp_path / "run" / "log.jsonl").open("a") as f:  # as a kill after a log line, before the next state write
        f.write(json.dumps({"step": 3, "phase": "gan"}) + "\n" + '{"step": 4, "pha')
    opts.gan_steps, opts.resume = 3, True
    lines: list[str] = []
    train_upscaler(opts, log=lines.append)
    assert any("dropped 2 log lines" in x for x in lines)
    assert [json.loads(x)["step"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_gan_end_options_validation(tmp_path):
    from dgf_core.training.upscaler import UpscalerTrainOptions

    for kw, message in [({"gan_loss": "hinge"}, "--gan-loss"), ({"pixel_weight": -1.0}, "--pixel-weight"),
                        ({"checkpoint_minutes": 0.0}, "--checkpoint-minutes"),
                        ({"init_from": "x", "gan_steps": 0, "l1_steps": 3}, "--gan-steps >= 1"),
                        ({"init_from": "x", "l1_steps": 5}, "--l1-steps 0")]:
        with pytest.raises(ValueError, match=message):
            UpscalerTrainOptions(data=["x"], out="y", **kw).validate()
    folder = save_tiny_upscaler(tmp_path / "up")
    assert UpscalerTrainOptions(data=[], out="", l1_steps=0, init_from=str(folder)).config().channels == TINY["channels"]
    with pytest.raises(ValueError, match="differs from the --model overrides"):
        UpscalerTrainOptions(data=[], out="", init_from=str(folder), model={"channels": 16}).config()


def test_export_refuses_a_run_without_gan_steps(tmp_path):
    from dgf_core.training.upscaler import UpscalerTrainOptions, export_detail, train_upscaler

    data = make_hr_folder(tmp_path / "faces")
    train_upscaler(UpscalerTrainOptions(data=[str(data)], out=str(tmp_path / "run"), model=TINY, patch=16, batch_size=2,
                                        l1_steps=1, gan_steps=0, eval_faces=2, threads=1), log=lambda *_: None)
    with pytest.raises(ValueError, match="no GAN-phase steps"):
        export_detail(tmp_path / "run", save_tiny_upscaler(tmp_path / "up"))
    with pytest.raises(CheckpointError, match="no state.safetensors"):
        export_detail(tmp_path / "nothing", tmp_path / "up")


def test_cli_train_gan_end_dry_run_and_export(tmp_path, detail_weights, capsys):
    data = make_hr_folder(tmp_path / "faces", 1, 0)
    run = tmp_path / "run"
    assert main(["train-upscaler", "--data", str(data), "--out", str(run), "--init-from", "one-ended", "--resume",
                 "--gan-loss", "relativistic", "--pixel-weight", "0.1", "--checkpoint-minutes", "5", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["config"]["channels"] == TINY["channels"] and printed["train_upscaler"]["gan_loss"] == "relativistic"
    assert printed["train_upscaler"]["l1_steps"] == 0
    assert not run.exists()
    assert main(["train-upscaler", "--data", str(data), "--out", str(run), "--init-from", "nope"]) == 2
    assert "no model folder" in capsys.readouterr().err
    assert main(["export-upscaler-detail", "--run", str(run), "--into", "one-ended"]) == 2
    assert "no state.safetensors" in capsys.readouterr().err


def test_cli_evaluate_upscaler_reports_detail(tmp_path, detail_weights, capsys):
    data = make_hr_folder(tmp_path / "faces", 0, 2)
    out = tmp_path / "eval.json"
    assert main(["evaluate-upscaler", "--model", "two-ended", "--model", "one-ended", "--data", str(data), "--faces", "2",
                 "--clip-frames", "8", "--detail", "0", "--detail", "1", "--json", str(out)]) == 0
    entry = json.loads(out.read_text())["folders"][str(data)]
    two, one = entry["two-ended"]["detail"], entry["one-ended"]["detail"]
    assert two["0.0"]["psnr_y"] == pytest.approx(entry["two-ended"]["x4_clean"]["psnr_y"])
    assert two["0.0"]["psnr_y"] != two["1.0"]["psnr_y"] and two["1.0"]["sharpness_ratio"] > 0
    assert one["1.0"] == {"skipped": "no detail weights"} and one["0.0"]["n"] == 2
    assert main(["evaluate-upscaler", "--model", "two-ended", "--data", str(data), "--c2st"]) == 2
    assert "--c2st needs --detail" in capsys.readouterr().err


def test_sharpness_and_detail_report_with_c2st():
    from dgf_core.evaluation.sr_metrics import detail_report, laplacian_variance, sharpness_ratio

    flat = torch.full((2, 3, 16, 16), 128, dtype=torch.uint8)
    noisy = random_faces(2, 16)
    assert laplacian_variance(flat).tolist() == [0.0, 0.0] and sharpness_ratio(noisy, noisy) == 1.0
    assert sharpness_ratio(smooth_faces(2, 16), noisy) < 0.2
    hr = smooth_faces(20, 32)
    from dgf_core.training.sr_data import bicubic_down, quantize
    from dgf_core.data import to_float, to_uint8

    lr = to_uint8(quantize(bicubic_down(to_float(hr), 4)))
    rep = detail_report(Upscaler.bicubic(), lr, hr, (0, 1), c2st=True)
    assert rep["1.0"] == {"skipped": "no detail weights"}
    assert 0 <= rep["0.0"]["c2st"]["accuracy"] <= 1 and rep["0.0"]["c2st"]["n_per_class"] == 10  # disjoint halves
    assert 0 <= rep["0.0"]["c2st_highpass"]["accuracy"] <= 1 and rep["0.0"]["c2st_highpass"]["n_per_class"] == 10


def test_high_pass_keeps_only_fine_detail():
    from dgf_core.images import high_pass

    flat = torch.full((2, 3, 16, 20), 77, dtype=torch.uint8)
    hp = high_pass(flat)
    assert hp.shape == flat.shape and hp.dtype == torch.uint8 and bool((hp == 128).all())  # no detail: grey
    ramp = torch.arange(20, dtype=torch.uint8).mul(10).expand(1, 3, 16, 20).contiguous()
    assert int((high_pass(ramp)[..., 4:-4].int() - 128).abs().max()) <= 1  # a smooth gradient is no detail either
    noisy = random_faces(4, 32)
    blurred = smooth_faces(4, 32)
    spread = lambda x: float(high_pass(x).float().std())  # noqa: E731
    assert spread(noisy) > 4 * spread(blurred)  # texture survives, smoothness does not


def test_sigterm_saves_the_state_and_stops_without_finishing_the_phase(tmp_path):
    import os
    import signal

    from dgf_core.checkpoint import read_training_info
    from dgf_core.training.upscaler import train_upscaler

    data = make_hr_folder(tmp_path / "faces")
    opts = gan_end_options(tmp_path, data, resume=True)
    opts.gan_steps, opts.checkpoint_minutes = 5, None

    def log(line: str) -> None:
        if line.startswith('{"step": 2,'):
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` while the run trains

    assert train_upscaler(opts, log=log) == tmp_path / "run"
    info = read_training_info(tmp_path / "run" / "state.safetensors")
    assert info["step"] == 2 and info["done"] == ["l1"] and not (tmp_path / "run" / "gan").exists()
    lines: list[str] = []
    assert train_upscaler(opts, log=lines.append) == tmp_path / "run" / "gan"  # the same call resumes and finishes
    assert any("resumed at step 2" in x for x in lines)
    assert read_training_info(tmp_path / "run" / "state.safetensors")["step"] == 5



def test_snapshots_are_model_folders_and_export(tmp_path, capsys):
    from dgf_core.training.upscaler import export_detail, train_upscaler

    data = make_hr_folder(tmp_path / "faces")
    opts = gan_end_options(tmp_path, data, snapshot_every=2)
    opts.gan_steps = 3
    train_upscaler(opts, log=lambda *_: None)
    snaps = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snaps == ["step0000002"]
    snap = Upscaler.from_pretrained(tmp_path / "run" / "snapshots" / "step0000002")
    assert snap.model.card["step"] == 2 and "sharpness_ratio" in snap.model.card["quick_eval_heldout_128"]
    assert main(["export-upscaler-detail", "--run", str(tmp_path / "run"), "--into", str(tmp_path / "up"),
                 "--snapshot", "step0000002"]) == 0
    card = json.loads((tmp_path / "up" / "config.json").read_text())["detail"]["card"]
    assert card["snapshot"] == "step0000002" and card["steps"] == 2 and card["images_seen"] == 4
    x = smooth_faces(1, 16)
    assert torch.equal(Upscaler.from_pretrained(tmp_path / "up").upscale(x, 4, 1), snap.upscale(x, 4))
    with pytest.raises(CheckpointError, match="no model folder"):
        export_detail(tmp_path / "run", tmp_path / "up", snapshot="step9999999")


def test_frequency_separation_splits_exactly_and_leaves_detail_to_d():
    from dgf_core.training.upscaler import (
        HIGH_PASS_GAIN,
        d_view,
        pixel_loss,
        separated_pixel_loss,
        split_frequencies,
    )

    x = smooth_faces(2, 32).float().div(127.5).sub(1.0)
    low, high = split_frequencies(x, 1.5)
    assert torch.allclose(low + high, x) and high.abs().mean() < x.abs().mean()
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert split_frequencies(flat, 1.5)[1].abs().max() < 1e-6  # nothing to detail in a flat image
    # a pixel-scale checkerboard on the output is texture: plain L1 punishes it, the separated loss hardly sees it
    hr = x
    hr2 = torch.nn.functional.avg_pool2d(hr, 2)
    checker = 0.2 * ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 2 - 1).float()
    out4, out2 = hr + checker, hr2
    plain = pixel_loss(out2, out4, hr2, hr, 0.5)
    sep = separated_pixel_loss(out2, out4, hr2, hr, 0.5, 1.5)
    assert plain > 0.19 and sep < 0.02
    # a change of the low frequencies (a brighter face) costs as much as ever
    assert torch.isclose(separated_pixel_loss(hr2 + 0.1, hr + 0.1, hr2, hr, 0.5, 1.5), torch.tensor(0.15), atol=1e-4)
    assert torch.equal(d_view(x, 0.0), x)
    assert torch.allclose(d_view(x, 1.5), high * HIGH_PASS_GAIN)


def test_gan_phase_with_frequency_separation_runs_and_says_so(tmp_path):
    from dgf_core.training.upscaler import UpscalerTrainOptions, export_detail, train_upscaler

    data = make_hr_folder(tmp_path / "faces")
    train_upscaler(gan_end_options(tmp_path, data, freq_sigma=1.5), log=lambda *_: None)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["d"]) and math.isfinite(r["adv"]) and math.isfinite(r["fm"]) for r in log)
    export_detail(tmp_path / "run", tmp_path / "up", log=lambda *_: None)
    card = json.loads((tmp_path / "up" / "config.json").read_text())["detail"]["card"]
    assert "frequency separation: L1 on the Gaussian low-pass (sigma 1.5 HR px)" in card["loss"]
    for bad in (-1.0, float("nan"), 100.0):
        with pytest.raises(ValueError, match="--freq-sigma"):
            UpscalerTrainOptions(data=["x"], out="y", freq_sigma=bad).validate()
