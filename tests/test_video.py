"""Video memories: specs and limits, rendering (pure, deterministic), encoding (MP4/GIF), recipes, CLI."""
from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_tiny_dcgan, make_tiny_stylegan2, make_tiny_upscaler

from dgf_core.cli import main
from dgf_core.generation import video
from dgf_core.generation.pipeline import SYNTHETIC_NOTICE, FacePipeline
from dgf_core.generation.video import ClipSpec, VideoError
from dgf_core.latent import SeedError


@pytest.fixture(scope="module")
def pipe(tiny_weights_dir) -> FacePipeline:
    return FacePipeline.from_pretrained(tiny_weights_dir / "tiny-dcgan", device="cpu")


# ---- spec and limits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seeds, f, loop, n", [((1, 7, 42), 24, False, 49), ((1, 7, 42), 24, True, 72),
                                                ((0, 1), 1, False, 2), ((0, 1, 2, 3), 24, True, 96)])
def test_frame_counts(seeds, f, loop, n):
    spec = ClipSpec(seeds, f, 24, loop=loop)
    assert spec.n_frames == n
    assert spec.duration == pytest.approx(n / 24)


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": (1,)}, "2..32 keyframe seeds"),
    ({"seeds": tuple(range(33))}, "2..32 keyframe seeds"),
    ({"seeds": (1, -2)}, "seed must be an integer"),
    ({"seeds": (1, 2.5)}, "seed must be an integer"),
    ({"seeds": "1,2"}, "list of keyframe seeds"),
    ({"frames_per_transition": 0}, "frames per transition must be in 1..240"),
    ({"frames_per_transition": 241}, "frames per transition must be in 1..240"),
    ({"frames_per_transition": 2.5}, "whole number"),
    ({"fps": 0}, "fps must be in 1..60"),
    ({"fps": 61}, "fps must be in 1..60"),
    ({"fps": float("nan")}, "whole number"),
    ({"fps": True}, "whole number"),
    ({"scale": 9}, "pixel scale must be in 1..8"),
    ({"loop": "yes"}, "loop must be true or false"),
    ({"method": "cubic"}, "unknown interpolation 'cubic'"),
    ({"easing": "bounce"}, "unknown easing 'bounce'"),
    ({"truncation": 1.5}, "truncation psi must be a number in [0, 1]"),
    ({"seeds": tuple(range(21)), "frames_per_transition": 24}, "would have 481 frames (21 keyframes x 24 frames per transition); the limit is 480"),
])
def test_limits_give_clear_errors(kwargs, message):
    base = {"seeds": (1, 2), "frames_per_transition": 24, "fps": 24}
    with pytest.raises(ValueError, match=re.escape(message)):
        ClipSpec(**{**base, **kwargs})


def test_limit_boundaries_are_allowed():
    assert ClipSpec(tuple(range(20)), 24, 60, loop=True).n_frames == video.MAX_FRAMES  # 20 x 24
    assert ClipSpec((1, 2), video.MAX_FRAMES_PER_TRANSITION, video.MIN_FPS, scale=video.MAX_PIXEL_SCALE).fps == 1


def test_parse_keyframes():
    assert video.parse_keyframes("1, 7,42") == (1, 7, 42)
    assert video.parse_keyframes("0-3") == (0, 1, 2, 3)
    with pytest.raises(VideoError, match="at least two keyframe seeds"):
        video.parse_keyframes("5")
    with pytest.raises(SeedError, match="too many seeds: at most 32"):
        video.parse_keyframes("0-40")
    with pytest.raises(SeedError, match="'x'"):
        video.parse_keyframes("1,x")


def test_frame_size_limit(pipe):
    spec = ClipSpec((1, 2), 2, 24, scale=8)  # 16 px x 8 = 128: fine
    assert video.render_clip(pipe, spec).shape == (3, 128, 128, 3)
    with pytest.raises(VideoError, match="the limit is 512px"):
        video.check_frame_size(128, 8)


# ---- rendering --------------------------------------------------------------------------------------------

def test_render_shape_keyframes_and_motion(pipe):
    spec = ClipSpec((1, 7, 42), 6, 12, method="slerp", easing="ease-in-out")
    frames = video.render_clip(pipe, spec)
    assert frames.shape == (13, 16, 16, 3) and frames.dtype == np.uint8
    # the walk passes through its keyframes: frames 0, 6 and 12 are the seeds' own images
    keys = pipe.generate([1, 7, 42]).permute(0, 2, 3, 1).numpy()
    for i, k in zip((0, 6, 12), keys):
        assert np.abs(frames[i].astype(int) - k.astype(int)).max() <= 1  # batch size may change the last bit
    # and moves in between, one step at a time
    steps = np.abs(np.diff(frames.astype(int), axis=0)).mean(axis=(1, 2, 3))
    assert (steps > 0).all()
    assert steps.max() < np.abs(frames[0].astype(int) - frames[6].astype(int)).mean()


def test_render_is_a_pure_function_of_its_inputs(pipe):
    spec = ClipSpec((3, 5), 40, 24, loop=True)  # 80 frames: three render batches
    torch.manual_seed(0)
    a = video.render_clip(pipe, spec)
    torch.manual_seed(123)  # global RNG state must not matter
    torch.rand(1000)
    b = video.render_clip(pipe, spec)
    assert np.array_equal(a, b)
    # a looped walk comes back: its last frame is one step before the first keyframe
    assert np.abs(a[-1].astype(int) - a[0].astype(int)).mean() < np.abs(a[40].astype(int) - a[0].astype(int)).mean()


def test_render_options_change_the_frames(pipe):
    spec = ClipSpec((3, 5), 8, 24)
    base = video.render_clip(pipe, spec)
    assert not np.array_equal(base, video.render_clip(pipe, replace(spec, method="lerp")))
    assert not np.array_equal(base, video.render_clip(pipe, replace(spec, easing="smoothstep")))
    assert not np.array_equal(base, video.render_clip(pipe, replace(spec, truncation=0.5)))
    big = video.render_clip(pipe, replace(spec, scale=3))
    assert big.shape == (9, 48, 48, 3)
    assert np.array_equal(big, base.repeat(3, axis=1).repeat(3, axis=2))


def test_progress_is_reported(pipe):
    seen = []
    video.render_clip(pipe, ClipSpec((1, 2), 40, 24), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(32, 41), (41, 41)]


# ---- upscaled and side-by-side clips ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    from dgf_core.generation.upscale import Upscaler

    return Upscaler.from_pretrained(make_tiny_upscaler(tmp_path_factory.mktemp("w") / "tiny-upscaler"))


@pytest.fixture(scope="module")
def small_pipe(tmp_path_factory) -> FacePipeline:
    return FacePipeline.from_pretrained(make_tiny_stylegan2(tmp_path_factory.mktemp("w") / "tiny-stylegan2"), device="cpu")


def test_upscaled_clip_is_each_frame_upscaled_then_scaled(pipe, upscaler):
    spec = ClipSpec((3, 5), 3, 24, scale=2)
    frames = video.render_clip(pipe, spec, upscaler=upscaler, factor="x2")
    plain = torch.from_numpy(video.render_clip(pipe, replace(spec, scale=1))).permute(0, 3, 1, 2)
    want = upscaler.upscale(plain, 2).permute(0, 2, 3, 1).numpy().repeat(2, axis=1).repeat(2, axis=2)
    assert frames.shape == (4, 64, 64, 3) and np.array_equal(frames, want)
    recipe = video.clip_recipe(pipe, spec, upscaler=upscaler, factor=2)
    assert recipe["upscale"] == {"upscaler": "tiny-upscaler", "weights_sha256": upscaler.model.weights_sha256, "factor": 2}
    assert recipe["width"] == 64 and "upscale" not in video.clip_recipe(pipe, spec)
    with pytest.raises(VideoError, match=re.escape("frames would be 1024x1024 (32px model upscaled x4 x8)")):
        video.check_frame_size(32, 8, 4)
    with pytest.raises(VideoError, match="upscale x4 needs an upscaler model"):
        video.render_clip(pipe, spec, factor=4)
    assert video.display_scale(16, factor=4) == 4 and video.display_scale(64, factor=4) == 1


def test_to_height_and_side_by_side():
    img = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    assert torch.equal(video.to_height(img, 4), img)
    assert torch.equal(video.to_height(img, 8), img.repeat_interleave(2, 2).repeat_interleave(2, 3))  # crisp pixels
    assert video.to_height(img, 6).shape == (2, 3, 6, 6)  # not a whole multiple: resampled
    wide = video.side_by_side([img, img[:, :, :2, :2]])
    assert wide.shape == (2, 3, 4, 8) and torch.equal(wide[..., :4], img)
    with pytest.raises(ValueError, match="same length"):
        video.side_by_side([img, img[:1]])


def test_compare_clip_walks_every_model_through_the_same_keyframes(pipe, small_pipe, upscaler):
    spec = ClipSpec((1, 7), 3, 12, loop=True, scale=2)
    seen = []
    frames = video.render_compare([pipe, small_pipe], spec, progress=lambda d, t: seen.append((d, t)))
    assert frames.shape == (6, 32, 64, 3) and seen == [(6, 12), (12, 12)]
    assert np.array_equal(frames[:, :, :32], video.render_clip(pipe, spec))
    assert np.array_equal(frames[:, :, 32:], video.render_clip(small_pipe, spec).repeat(2, axis=1).repeat(2, axis=2))
    recipe = video.compare_recipe([pipe, small_pipe], spec)
    assert recipe["kind"] == "compare-video" and (recipe["width"], recipe["height"]) == (64, 32)
    assert [m["model"] for m in recipe["models"]] == ["tiny-dcgan", "tiny-stylegan2"]
    assert recipe["models"][1]["weights_sha256"] == small_pipe.model.weights_sha256 and recipe["seeds"] == [1, 7]
    up = video.render_compare([pipe, small_pipe], spec, upscaler=upscaler, factor=2)
    assert up.shape == (6, 64, 128, 3)
    with pytest.raises(VideoError, match="two or more models"):
        video.render_compare([pipe], spec)


def test_compare_image_rows_are_seeds_and_columns_models(pipe, small_pipe, upscaler):
    from dgf_core.generation import compare

    grid = compare.compare_grid([pipe, small_pipe], [4, 5, 6], 0.8)
    assert grid.shape == (3, 2 + 3 * 18, 2 + 2 * 18)
    assert torch.equal(grid[:, 2 + 18 : 2 + 18 + 16, 2:18], pipe.generate([5], 0.8)[0])
    assert torch.equal(grid[:, 2:18, 20:36], small_pipe.generate([4], 0.8)[0].repeat_interleave(2, 1).repeat_interleave(2, 2))
    big = compare.compare_grid([pipe, small_pipe], [4], 1.0, upscaler, "x4")
    assert big.shape == (3, 2 + 66, 2 + 2 * 66)
    recipe = compare.compare_recipe([pipe, small_pipe], [4], 1.0, upscaler, 4)
    assert recipe["upscale"]["factor"] == 4 and recipe["models"][0]["model"] == "tiny-dcgan"
    with pytest.raises(ValueError, match="1..16 seeds"):
        compare.compare_grid([pipe, small_pipe], list(range(17)))


def test_picture_actions_are_the_uis_one_core_call(pipe, small_pipe, upscaler, tmp_path):
    from PIL import Image

    from dgf_core.generation import compare

    face = compare.face_picture(pipe, 42, 0.7, upscaler, "x2")  # seed -> image
    assert torch.equal(face.image, compare.faces(pipe, [42], 0.7, upscaler, 2)[0]) and face.name == "tiny-dcgan-seed42-x2.png"
    assert face.recipe == compare.image_recipe(pipe, upscaler, 2, seed=42, truncation=0.7)
    path = face.save(tmp_path)  # a folder: under its own name, atomically
    assert path == tmp_path / face.name and path.read_bytes() == face.png_bytes()
    with Image.open(path) as im:
        assert json.loads(im.text["dgf_recipe"]) == face.recipe and im.text["Description"] == SYNTHETIC_NOTICE
    assert compare.face_picture(pipe, 3).name == "tiny-dcgan-seed3.png"
    with pytest.raises(SeedError):
        compare.face_picture(pipe, -1)
    both = compare.compare_picture([pipe, small_pipe], [4, 5], 0.8)  # two models -> comparison image
    assert torch.equal(both.image, compare.compare_grid([pipe, small_pipe], [4, 5], 0.8))
    assert both.name == "tiny-dcgan-vs-tiny-stylegan2-4-5.png" and both.recipe["seeds"] == [4, 5]
    assert both.save(tmp_path / "mine.png") == tmp_path / "mine.png"  # a .png path: that file
    small = Image.new("RGB", (10, 8), (200, 100, 50))
    big = compare.upscaled_picture(upscaler, small, "x4")  # image -> upscaled image
    assert big.image.size == (40, 32) and big.name == "upscaled-x4.png" and big.recipe["input_size"] == [10, 8]
    with pytest.raises(ValueError, match="x2 or x4"):
        compare.upscaled_picture(upscaler, small, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.png", face.name]  # no temporary file left
    # the CLI's `generate` writes, per seed, the same picture and recipe (in batches, under its own file names)
    from dgf_core.cli import main

    assert main(["generate", "--model", str(pipe.model.path), "--seeds", "42", "--truncation", "0.7",
                 "--out", str(tmp_path / "cli"), "--device", "cpu"]) == 0
    one = compare.face_picture(pipe, 42, 0.7)
    with Image.open(tmp_path / "cli" / "seed000042.png") as im:
        assert json.loads(im.text["dgf_recipe"]) == one.recipe
        assert torch.equal(torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1), one.image)


# ---- encoding ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(pipe, tmp_path_factory):
    spec = ClipSpec((1, 7, 42), 12, 12, loop=True, scale=4)  # 36 frames, 3 s, 64x64
    frames = video.render_clip(pipe, spec)
    recipe = video.clip_recipe(pipe, spec)
    folder = tmp_path_factory.mktemp("clips")
    paths = {ext: video.write_clip(frames, folder / f"walk{ext}", spec.fps, recipe) for ext in (".mp4", ".gif")}
    return spec, frames, recipe, paths


def test_mp4_decodes_with_expected_size_and_duration(clip):
    spec, frames, recipe, paths = clip
    decoded, fps = video.read_clip(paths[".mp4"])
    assert decoded.shape == frames.shape == (36, 64, 64, 3)
    assert fps == 12 and decoded.shape[0] / fps == pytest.approx(spec.duration) == 3.0


def test_gif_decodes_with_expected_size_and_about_the_duration(clip):
    spec, frames, recipe, paths = clip
    decoded, fps = video.read_clip(paths[".gif"])
    assert decoded.shape == frames.shape
    assert decoded.shape[0] / fps == pytest.approx(spec.duration, rel=0.05)  # GIF delays are in 1/100 s


def moving_square(n: int, side: int = 64) -> np.ndarray:
    """n frames of a colour gradient with a white square moving one pixel per frame: every frame differs."""
    y, x = np.mgrid[0:side, 0:side]
    base = np.stack([x * 255 // side, y * 255 // side, np.full_like(x, 96)], -1).astype(np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    for i in range(n):
        frames[i, 20:36, 4 + i : 20 + i] = 255
    return frames


@pytest.mark.parametrize("ext, tolerance", [(".mp4", 4.0), (".gif", 8.0)])
def test_encoding_keeps_every_frame_in_order(tmp_path, ext, tolerance):
    frames = moving_square(25)  # (25 frames at 24 fps: where summing 1/fps 25 times falls short)
    decoded, _ = video.read_clip(video.write_clip(frames, tmp_path / f"sq{ext}", 24, {}))
    assert decoded.shape == frames.shape
    err = np.abs(decoded.astype(int) - frames.astype(int)).mean(axis=(1, 2, 3))
    assert err.max() < tolerance  # lossy, but each decoded frame is its own source frame...
    shifted = np.abs(decoded[1:].astype(int) - frames[:-1].astype(int)).mean(axis=(1, 2, 3))
    assert (shifted > err[1:]).all()  # ...not its neighbour (no frame dropped or repeated)


def test_a_streamed_mp4_is_the_written_one(tmp_path):
    frames = moving_square(25)
    ref = video.read_clip(video.write_clip(frames, tmp_path / "ref.mp4", 24, {"a": 1}))[0]
    outs = video.write_mp4_stream(iter(frames), [tmp_path / "s.mp4", tmp_path / "t.mp4"], 24, {"a": 1})
    for out in outs:
        back, fps = video.read_clip(out)
        assert fps == 24 and np.array_equal(back, ref) and video.read_clip_recipe(out) == {"a": 1}
    with pytest.raises(ValueError, match="at least one frame"):
        video.write_mp4_stream(iter([]), [tmp_path / "none.mp4"], 24, {})
    with pytest.raises(ValueError, match="every frame must be"):
        video.write_mp4_stream(iter([frames[0], frames[0, :32]]), [tmp_path / "odd.mp4"], 24, {})
    with pytest.raises(video.VideoError, match=".mp4 files only"):
        video.write_mp4_stream(iter(frames), [tmp_path / "x.gif"], 24, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.mp4", "s.mp4", "t.mp4"]  # nothing left by the failures


@pytest.mark.parametrize("ext", [".mp4", ".gif"])
def test_clips_carry_their_recipe_and_a_synthetic_notice(clip, ext):
    spec, frames, recipe, paths = clip
    back = video.read_clip_recipe(paths[ext])
    assert back == recipe
    assert back["synthetic"] is True and back["notice"] == SYNTHETIC_NOTICE
    assert back["model"] == "tiny-dcgan" and len(back["weights_sha256"]) == 64
    assert back["seeds"] == [1, 7, 42] and back["fps"] == 12 and back["easing"] == "linear" and back["loop"] is True
    assert ClipSpec.from_recipe(back) == spec


def test_mp4_metadata_survives_awkward_characters(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    recipe = {"kind": "note", "text": "a=b; #c \\ d\n e", "unicode": "naïve ✓"}
    p = video.write_clip(frames, tmp_path / "x.mp4", 24, recipe)
    assert video.read_clip_recipe(p) == recipe


def test_gif_comment_spans_several_sub_blocks(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    recipe = {"long": "x" * 1000}
    assert video.read_clip_recipe(video.write_clip(frames, tmp_path / "x.gif", 10, recipe)) == recipe


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    out = tmp_path / "c.mp4"
    out.write_bytes(b"old")
    video.write_clip(frames, out, 24, {})
    assert video.read_clip(out)[0].shape == (3, 8, 8, 3)
    odd = np.zeros((3, 7, 7, 3), np.uint8)  # H.264 refuses odd sizes: the old file stays, no temp left
    with pytest.raises(VideoError, match="even frame sizes"):
        video.write_clip(odd, tmp_path / "odd.mp4", 24, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]


@pytest.mark.parametrize("bad, message", [(np.zeros((2, 8, 8, 3), np.float32), "uint8"),
                                          (np.zeros((0, 8, 8, 3), np.uint8), "at least one frame"),
                                          (np.zeros((2, 8, 8), np.uint8), "uint8")])
def test_write_rejects_bad_frames(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        video.write_clip(bad, tmp_path / "c.mp4", 24, {})


def test_unsupported_format_and_unreadable_recipes(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(VideoError, match="unsupported clip format '.avi'"):
        video.write_clip(frames, tmp_path / "c.avi", 24, {})
    plain = tmp_path / "plain.gif"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(VideoError, match="carries no Deeply Good Fakes recipe"):
        video.read_clip_recipe(plain)
    with pytest.raises(FileNotFoundError):
        video.read_clip_recipe(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="not a clip recipe"):
        ClipSpec.from_recipe({"kind": "image", "seed": 1})
    with pytest.raises(VideoError, match="lacks fps"):
        ClipSpec.from_recipe({"kind": "video", **{k: v for k, v in ClipSpec((1, 2)).params().items() if k != "fps"}})


def test_recipe_refuses_other_weights(pipe, tmp_path):
    recipe = video.clip_recipe(pipe, ClipSpec((1, 2)))
    other = FacePipeline.from_pretrained(make_tiny_dcgan(tmp_path / "other", seed=1), device="cpu")
    video.check_recipe_model(pipe, recipe)
    with pytest.raises(VideoError, match="would render a different clip"):
        video.check_recipe_model(other, recipe)


# ---- CLI --------------------------------------------------------------------------------------------------

def test_cli_writes_clips_and_reproduces_them_from_the_recipe(tiny_weights_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    mp4, gif, rec = tmp_path / "clip.mp4", tmp_path / "clip.gif", tmp_path / "clip.json"
    assert main(["video", "--model", "tiny-dcgan", "--seeds", "1,7,42", "--frames-per-seed", "6", "--fps", "12",
                 "--loop", "--method", "lerp", "--easing", "smoothstep", "--truncation", "0.8", "--scale", "2",
                 "--out", str(mp4), "--out", str(gif), "--save-recipe", str(rec)]) == 0
    out = capsys.readouterr().out
    assert '"n_frames": 18' in out and "wrote" in out
    recipe = json.loads(rec.read_text())
    assert recipe == video.read_clip_recipe(mp4) == video.read_clip_recipe(gif)
    assert (recipe["method"], recipe["easing"], recipe["truncation"], recipe["scale"]) == ("lerp", "smoothstep", 0.8, 2)
    frames, fps = video.read_clip(mp4)
    assert frames.shape == (18, 32, 32, 3) and fps == 12

    again = tmp_path / "again.mp4"
    assert main(["video", "--recipe", str(rec), "--out", str(again)]) == 0
    assert np.array_equal(video.read_clip(again)[0], frames)
    from_clip = tmp_path / "from_clip.gif"
    assert main(["video", "--recipe", str(mp4), "--out", str(from_clip)]) == 0
    assert np.array_equal(video.read_clip(from_clip)[0], video.read_clip(gif)[0])


@pytest.mark.parametrize("args, message", [
    (["--model", "tiny-dcgan", "--seeds", "1,x"], "error: a seed must be an integer"),
    (["--model", "tiny-dcgan", "--seeds", "1"], "error: a clip needs at least two keyframe seeds"),
    (["--model", "tiny-dcgan", "--seeds", "1,2", "--frames-per-seed", "999"], "error: frames per transition must be in 1..240"),
    (["--model", "tiny-dcgan", "--seeds", "1,2", "--fps", "120"], "error: fps must be in 1..60"),
    (["--model", "nope", "--seeds", "1,2"], "error: no model folder 'nope'"),
    (["--seeds", "1,2"], "error: video needs --model and --seeds"),
    (["--model", "tiny-dcgan", "--seeds", "1,2", "--out", "x.avi"], "error: unsupported clip format '.avi'"),
])
def test_cli_errors(tiny_weights_dir, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "c.mp4")]
    assert main(["video", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c.mp4").exists()


def test_cli_upscales_and_reproduces_from_the_recipe(tiny_weights_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    sr = make_tiny_upscaler(tmp_path / "sr")
    mp4, rec = tmp_path / "up.mp4", tmp_path / "up.json"
    assert main(["video", "--model", "tiny-dcgan", "--seeds", "1,2", "--frames-per-seed", "2", "--upscale", "4",
                 "--upscaler", str(sr), "--out", str(mp4), "--save-recipe", str(rec)]) == 0
    frames, _ = video.read_clip(mp4)
    assert frames.shape == (3, 64, 64, 3)
    recipe = json.loads(rec.read_text())
    assert recipe["upscale"]["upscaler"] == "sr" and recipe["upscale"]["factor"] == 4
    again = tmp_path / "again.mp4"
    assert main(["video", "--recipe", str(rec), "--upscaler", str(sr), "--out", str(again)]) == 0
    assert np.array_equal(video.read_clip(again)[0], frames)
    other = make_tiny_upscaler(tmp_path / "other", seed=3)
    assert main(["video", "--recipe", str(rec), "--upscaler", str(other), "--out", str(again)]) == 2
    assert "these weights would render a different clip" in capsys.readouterr().err
    assert main(["video", "--recipe", str(rec), "--upscale", "2", "--out", str(again)]) == 2
    assert "drop --upscale" in capsys.readouterr().err
    assert main(["video", "--model", "tiny-dcgan", "--seeds", "1,2", "--upscale", "4", "--out", str(again)]) == 2
    assert "--upscale needs an upscaler" in capsys.readouterr().err
    assert main(["video", "--model", "tiny-dcgan", "--seeds", "1,2", "--upscale", "3", "--out", str(again)]) == 2
    assert "upscale factor must be off, 2 or 4" in capsys.readouterr().err


def test_cli_recipe_excludes_other_clip_options(tiny_weights_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    rec = tmp_path / "r.json"
    rec.write_text(json.dumps({"kind": "video", "model": "tiny-dcgan", **ClipSpec((1, 2)).params()}))
    assert main(["video", "--recipe", str(rec), "--fps", "30", "--out", str(tmp_path / "c.mp4")]) == 2
    assert "--recipe fixes the clip; drop --fps" in capsys.readouterr().err
    assert main(["video", "--recipe", str(rec), "--dry-run", "--out", str(tmp_path / "c.mp4")]) == 0


def test_clip_benchmark_runs(tiny_weights_dir, monkeypatch):
    from dgf_core.evaluation.bench import BenchContext, bench_clip

    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    res = bench_clip(BenchContext(model="tiny-dcgan", quick=True))
    assert res["frames"] == 96 and res["fps"] == 24
    assert 0 < res["render_s"] and 0 < res["encode_mp4_s"] and math.isfinite(res["total_s"])
    assert res["target_met"] == (res["total_s"] <= 2.0)
