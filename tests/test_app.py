"""The Gradio app, run as `python app.py` on a free port (fixture `gradio_app`) and driven through gradio_client."""
from __future__ import annotations

import io
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from dgf_core.generation import video
from dgf_core.generation.pipeline import SYNTHETIC_NOTICE, FacePipeline
from dgf_core.generation.upscale import Upscaler


@pytest.fixture(scope="module")
def client(gradio_app, tmp_path_factory) -> Client:
    return Client(gradio_app.url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def pipe(tiny_weights_dir) -> FacePipeline:
    return FacePipeline.from_pretrained(tiny_weights_dir / "tiny-dcgan", device="cpu")


@pytest.fixture(scope="module")
def style_pipe(app_weights_dir) -> FacePipeline:
    return FacePipeline.from_pretrained(app_weights_dir / "tiny-stylegan2", device="cpu")


@pytest.fixture(scope="module")
def upscaler(app_weights_dir) -> Upscaler:
    return Upscaler.from_pretrained(app_weights_dir / "tiny-upscaler")


def hwc(images):
    return images.permute(0, 2, 3, 1).numpy()


def test_api_names_and_signatures(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/interpolate", "/grid", "/compare", "/compare_clip", "/upscale"} <= set(api)
    # new options come last, with defaults, so existing clients keep working
    assert [p["parameter_name"] for p in api["/generate"]["parameters"]] == ["seed", "model", "truncation", "upscale"]
    params = [p["parameter_name"] for p in api["/interpolate"]["parameters"]]
    assert params[:4] == ["seeds", "frames_per_transition", "fps", "model"] and params[-2:] == ["upscale", "gif"]
    assert all(p["parameter_has_default"] for p in api["/interpolate"]["parameters"][4:])
    # "auto": what "off" gave for every model below 128 px; a 128-px model's face comes at 256 px
    assert api["/generate"]["parameters"][3]["parameter_default"] == "auto"
    assert [p["parameter_name"] for p in api["/compare"]["parameters"]] == ["seeds", "model_a", "model_b", "truncation", "upscale"]
    assert [p["parameter_name"] for p in api["/upscale"]["parameters"]] == ["image", "factor", "detail"]
    assert api["/upscale"]["parameters"][2]["parameter_default"] == 0  # today's output unless asked
    assert [r["component"] for r in api["/generate"]["returns"]] == ["Image"]
    assert [r["component"] for r in api["/interpolate"]["returns"]] == ["Video"]  # the MP4 only
    assert [r["component"] for r in api["/compare"]["returns"]] == ["Image"]
    assert [r["component"] for r in api["/compare_clip"]["returns"]] == ["Video"]


def test_generate_returns_the_library_image_with_provenance(client, pipe):
    path = client.predict(42, "tiny-dcgan", 1.0, api_name="/generate")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (16, 16)
        pixels, text = np.asarray(im.convert("RGB")), dict(im.text)
    assert np.array_equal(pixels, pipe.generate([42])[0].permute(1, 2, 0).numpy())
    assert text["Description"] == SYNTHETIC_NOTICE
    recipe = json.loads(text["dgf_recipe"])
    assert recipe["synthetic"] is True and recipe["seed"] == 42 and recipe["truncation"] == 1.0
    assert recipe["model"] == "tiny-dcgan" and recipe["weights_sha256"] == pipe.model.weights_sha256


def test_generate_seed_and_truncation_change_the_image(client, pipe):
    a = np.asarray(Image.open(client.predict(7, "tiny-dcgan", 1.0, api_name="/generate")))
    b = np.asarray(Image.open(client.predict(8, "tiny-dcgan", 1.0, api_name="/generate")))
    c = np.asarray(Image.open(client.predict(7, "tiny-dcgan", 0.5, api_name="/generate")))
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(c, pipe.generate([7], 0.5)[0].permute(1, 2, 0).numpy())


def test_grid_shows_consecutive_seeds(client, pipe):
    items = client.predict(5, 4, "tiny-dcgan", 1.0, api_name="/grid")
    assert [it["caption"] for it in items] == ["seed 5", "seed 6", "seed 7", "seed 8"]
    want = pipe.generate([5, 6, 7, 8]).permute(0, 2, 3, 1).numpy()
    for it, w in zip(items, want):
        with Image.open(it["image"]) as im:
            assert json.loads(im.text["dgf_recipe"])["seed"] == int(it["caption"].split()[1])
            assert np.array_equal(np.asarray(im.convert("RGB")), w)


def test_interpolate_defaults_give_a_looping_mp4(client):
    path = client.predict("1, 7, 42", 6, 12, "tiny-dcgan", api_name="/interpolate")
    assert path.endswith(".mp4")
    frames, fps = video.read_clip(path)
    # defaults: loop, ease-in-out, slerp, pixel scale 8 for a 16 px model (frames about 256 px at most)
    assert frames.shape == (18, 128, 128, 3) and fps == 12
    recipe = video.read_clip_recipe(path)
    assert recipe["seeds"] == [1, 7, 42] and recipe["loop"] is True and recipe["easing"] == "ease-in-out"
    assert recipe["model"] == "tiny-dcgan" and recipe["synthetic"] is True and recipe["duration_s"] == 1.5


def test_interpolate_with_every_option(client):
    path = client.predict("3,4", 5, 10, "tiny-dcgan", "lerp", "smoothstep", False, 0.7, 2, api_name="/interpolate")
    frames, fps = video.read_clip(path)
    assert frames.shape == (6, 32, 32, 3) and fps == 10
    recipe = video.read_clip_recipe(path)
    assert {k: recipe[k] for k in ("method", "easing", "loop", "truncation", "scale")} == {
        "method": "lerp", "easing": "smoothstep", "loop": False, "truncation": 0.7, "scale": 2}


def test_generate_upscaled_names_the_upscaler(client, pipe, upscaler):
    path = client.predict(42, "tiny-dcgan", 1.0, "x4", api_name="/generate")
    with Image.open(path) as im:
        assert im.size == (64, 64)
        pixels, recipe = np.asarray(im.convert("RGB")), json.loads(im.text["dgf_recipe"])
    assert np.array_equal(pixels, hwc(upscaler.upscale(pipe.generate([42]), 4))[0])
    assert not np.array_equal(pixels, hwc(Upscaler.bicubic().upscale(pipe.generate([42]), 4))[0])
    assert recipe["upscale"] == {"upscaler": "tiny-upscaler", "weights_sha256": upscaler.model.weights_sha256, "factor": 4}
    assert recipe["model"] == "tiny-dcgan" and recipe["seed"] == 42
    with Image.open(client.predict(42, "tiny-dcgan", 1.0, "off", api_name="/generate")) as im:
        assert im.size == (16, 16) and "upscale" not in json.loads(im.text["dgf_recipe"])


def test_interpolate_upscaled(client, pipe, upscaler):
    path = client.predict("3,4", 2, 10, "tiny-dcgan", "lerp", "linear", False, 1.0, 2, "x2", api_name="/interpolate")
    frames, _ = video.read_clip(path)
    assert frames.shape == (3, 64, 64, 3)  # 16 px, upscaled x2, pixel scale 2
    want = video.render_clip(pipe, video.ClipSpec((3, 4), 2, 10, method="lerp", scale=2), upscaler=upscaler, factor=2)
    assert np.abs(frames.astype(int) - want.astype(int)).mean() < 6  # H.264 is lossy
    recipe = video.read_clip_recipe(path)
    assert recipe["upscale"]["upscaler"] == "tiny-upscaler" and recipe["upscale"]["factor"] == 2
    assert recipe["width"] == recipe["height"] == 64


def test_compare_puts_the_same_seeds_side_by_side(client, pipe, style_pipe):
    path = client.predict("5, 6", "tiny-dcgan", "tiny-stylegan2", 1.0, api_name="/compare")
    with Image.open(path) as im:
        grid, recipe = np.asarray(im.convert("RGB")), json.loads(im.text["dgf_recipe"])
        assert im.text["Description"] == SYNTHETIC_NOTICE
    assert grid.shape == (2 + 2 * 18, 2 + 2 * 18, 3)  # 2 seeds x 2 models, 16 px each, 2 px gaps
    a, b = hwc(pipe.generate([5, 6])), hwc(style_pipe.generate([5, 6]))  # B is 8 px: shown x2, nearest
    for row in range(2):
        y = 2 + row * 18
        assert np.array_equal(grid[y : y + 16, 2:18], a[row])
        assert np.array_equal(grid[y : y + 16, 20:36], b[row].repeat(2, 0).repeat(2, 1))
    assert recipe["kind"] == "compare" and recipe["seeds"] == [5, 6] and recipe["synthetic"] is True
    assert recipe["models"] == [{"model": "tiny-dcgan", "weights_sha256": pipe.model.weights_sha256},
                                {"model": "tiny-stylegan2", "weights_sha256": style_pipe.model.weights_sha256}]


def test_compare_clip_walks_both_models_in_sync(client, pipe, style_pipe):
    path = client.predict("1, 2", 3, 6, "tiny-dcgan", "tiny-stylegan2", False, 1.0, 2, api_name="/compare_clip")
    frames, fps = video.read_clip(path)
    assert frames.shape == (4, 32, 64, 3) and fps == 6  # 16 px x2 beside 8 px x2 scaled to 32 px
    spec = video.ClipSpec((1, 2), 3, 6, easing="ease-in-out", scale=2)
    left, right = video.render_clip(pipe, spec), video.render_clip(style_pipe, spec)
    assert np.abs(frames[:, :, :32].astype(int) - left.astype(int)).mean() < 6
    assert np.abs(frames[:, :, 32:].astype(int) - right.repeat(2, 1).repeat(2, 2).astype(int)).mean() < 6
    recipe = video.read_clip_recipe(path)
    assert recipe["kind"] == "compare-video" and recipe["seeds"] == [1, 2] and recipe["n_frames"] == 4
    assert [m["model"] for m in recipe["models"]] == ["tiny-dcgan", "tiny-stylegan2"]
    assert [m["weights_sha256"] for m in recipe["models"]] == [pipe.model.weights_sha256, style_pipe.model.weights_sha256]


def test_model_cards_show_what_exists(app_weights_dir, monkeypatch):
    from dgf_core.serving import registry

    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(app_weights_dir))
    assert registry.default_pair() == ("tiny-dcgan", "tiny-stylegan2")
    evaluated = registry.card_markdown(registry.describe("tiny-stylegan2"))
    assert "faces detected (p>=0.999): 50.0%" in evaluated and "memorization ratio: 1.250" in evaluated
    assert "images seen: 1,234" in evaluated and "hardware: test CPU" in evaluated
    bare = registry.card_markdown(registry.describe("tiny-dcgan"))
    assert "faces detected (p>=0.999): not evaluated" in bare and "memorization ratio: not evaluated" in bare


def png_file(path, size=(8, 8), seed=0, **save):
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, **save)
    return path


def test_upscale_an_uploaded_image(client, upscaler, tmp_path):
    src = png_file(tmp_path / "face.png")
    out = client.predict(handle_file(str(src)), "x4", api_name="/upscale")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (32, 32)
        pixels, text = np.asarray(im.convert("RGB")), dict(im.text)
    want = upscaler.upscale(torch_image(src), 4)
    assert np.array_equal(pixels, hwc(want)[0])
    recipe = json.loads(text["dgf_upscale"])
    assert recipe == {"upscaler": "tiny-upscaler", "weights_sha256": upscaler.model.weights_sha256, "factor": 4,
                      "input_size": [8, 8]}
    assert "face.png" not in json.dumps(text)  # the upload's name is not recorded


def test_upscale_takes_the_first_frame_of_an_animation_and_converts_cmyk(client, upscaler, tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((200, 10, 10), (10, 200, 10))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(client.predict(handle_file(str(tmp_path / "anim.gif")), "x2", api_name="/upscale")) as im:
        assert im.size == (16, 16) and np.asarray(im.convert("RGB"))[8, 8, 0] > 100  # the red first frame
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    with Image.open(client.predict(handle_file(str(tmp_path / "cmyk.jpg")), "x2", api_name="/upscale")) as im:
        assert im.mode == "RGB" and im.size == (16, 16)


def torch_image(path):
    import torch

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)[None]


@pytest.mark.parametrize("make, message", [
    (lambda p: (p.write_text("not an image"), p)[1], "this file is not an image in a supported format"),
    (lambda p: (p.write_bytes(png_file(p, size=(64, 64)).read_bytes()[:200]), p)[1], "truncated or corrupt"),
    (lambda p: png_file(p, size=(600, 20)), "images must be 4..512 pixels a side to upscale, got 600x20"),
    (lambda p: (Image.new("RGB", (4100, 4100)).save(p, format="PNG"), p)[1], "the limit is 16,777,216 pixels"),
])
def test_upscale_refuses_bad_uploads_clearly(client, gradio_app, tmp_path, make, message):
    import zlib

    path = make(tmp_path / f"upload-{zlib.crc32(message.encode())}.png")
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(path)), "x4", api_name="/upscale")
    assert message in str(e.value) and "Traceback" not in str(e.value)
    if "pixels a side" not in message:  # an upload that is no image is deleted at once; a good image stays for
        assert left_on_disk(gradio_app, path.read_bytes(), path.name) == []  # the next click (another factor)


def test_without_an_upscaler_the_option_is_off_with_a_note(tiny_weights_dir, monkeypatch):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    import app

    radio = app.upscale_radio("x")
    assert radio.interactive is False and "no upscaler in the weights folder" in radio.info
    assert app.upscaler_for("off") == (None, 1)
    with pytest.raises(ValueError, match="needs an upscaler model, and there is none in the weights folder"):
        app.upscaler_for("x2")


def test_the_likeness_slider_starts_at_the_models_default(app_weights_dir, monkeypatch):
    """Tuning defaults differ by latent space (DCGAN z: 150 steps, StyleGAN2 W+: 250): the slider follows the model."""
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(app_weights_dir))
    import app
    from dgf_core.faces.tuning import SPACE_DEFAULTS

    assert app.tuning_steps_for("tiny-dcgan").value == SPACE_DEFAULTS["z"]["steps"]
    assert app.tuning_steps_for("tiny-stylegan2").value == SPACE_DEFAULTS["w+"]["steps"] != SPACE_DEFAULTS["z"]["steps"]


BAD_INPUTS = [
    ("/generate", (-1, "tiny-dcgan", 1.0), "a seed must be an integer in 0..4294967295, got -1"),
    ("/generate", (2**32, "tiny-dcgan", 1.0), "a seed must be an integer in 0..4294967295, got 4294967296"),
    ("/generate", (1.5, "tiny-dcgan", 1.0), "got 1.5"),
    ("/generate", ("abc", "tiny-dcgan", 1.0), "got 'abc'"),
    ("/generate", (1, "nope", 1.0), "unknown model 'nope'; available: tiny-dcgan, tiny-stylegan2"),
    ("/generate", (1, "tiny-dcgan", 1.0, "x3"), "'x3' (type: <class 'str'>) is not in the list of choices: ['auto', 'off', 'x2', 'x4']"),
    ("/compare", ("1,2", "tiny-dcgan", "nope"), "unknown model 'nope'"),
    ("/compare", ("0-16", "tiny-dcgan", "tiny-stylegan2"), "too many seeds: at most 16"),
    ("/compare", ("", "tiny-dcgan", "tiny-stylegan2"), "no seeds given"),
    ("/compare_clip", ("1", 6, 12, "tiny-dcgan", "tiny-stylegan2"), "a clip needs at least two keyframe seeds"),
    ("/compare_clip", ("1,2", 6, 12, "tiny-dcgan", "../x"), "unknown model '../x'"),
    ("/generate", (1, "../tiny-dcgan", 1.0), "unknown model '../tiny-dcgan'"),
    ("/generate", (1, "tiny-dcgan", 2.0), "greater than maximum value 1"),
    ("/grid", (1, 65, "tiny-dcgan", 1.0), "greater than maximum value 64"),
    ("/grid", (2**32 - 2, 4, "tiny-dcgan", 1.0), "got 4294967296"),
    ("/interpolate", ("1", 6, 12, "tiny-dcgan"), "a clip needs at least two keyframe seeds"),
    ("/interpolate", ("1,x", 6, 12, "tiny-dcgan"), "got 'x'"),
    ("/interpolate", ("", 6, 12, "tiny-dcgan"), "no seeds given"),
    ("/interpolate", (",".join(map(str, range(33))), 6, 12, "tiny-dcgan"), "too many seeds: at most 32"),
    ("/interpolate", ("1,2", 241, 12, "tiny-dcgan"), "greater than maximum value 240"),
    ("/interpolate", ("1,2", 6, 61, "tiny-dcgan"), "greater than maximum value 60"),
    ("/interpolate", ("0-20", 24, 12, "tiny-dcgan"), "the limit is 480"),  # 21 keyframes, looped: 504 frames
    ("/interpolate", ("1,2", 6, 12, "nope"), "unknown model 'nope'"),
    ("/interpolate", ("1,2", 6, 12, "tiny-dcgan", "cubic"), "'cubic' (type: <class 'str'>) is not in the list of choices: ['slerp', 'lerp']"),
    ("/interpolate", ("1,2", 6, 12, "tiny-dcgan", "slerp", "linear", True, 1.0, 3), "3 (type: <class 'int'>) is not in the list of choices: [1, 2, 4, 8]"),
]


@pytest.mark.parametrize("api_name, args, message", BAD_INPUTS)
def test_bad_input_gives_a_clear_error(client, api_name, args, message):
    with pytest.raises(AppError) as e:
        client.predict(*args, api_name=api_name)
    assert message in str(e.value)
    assert "Traceback" not in str(e.value)


def test_concurrent_renders_get_their_own_files(gradio_app, tmp_path):
    clients = [Client(gradio_app.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / str(i)))
               for i in range(2)]
    requests = [("10,11,12", 8), ("20,21", 9)]
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(c.predict, seeds, n, 12, "tiny-dcgan", api_name="/interpolate")
                for c, (seeds, n) in zip(clients, requests)]
        paths = [j.result(timeout=120) for j in jobs]
    assert paths[0] != paths[1]
    for path, (seeds, n) in zip(paths, requests):
        recipe = video.read_clip_recipe(path)
        assert recipe["seeds"] == [int(s) for s in seeds.split(",")] and recipe["frames_per_transition"] == n
        assert video.read_clip(path)[0].shape[0] == recipe["n_frames"]


def test_the_queue_bounds_renders_and_the_defaults_are_local(tiny_weights_dir, monkeypatch):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    for var in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "GRADIO_SHARE"):
        monkeypatch.delenv(var, raising=False)
    import app

    fns = {f.api_name: f for f in app.demo.fns.values()}
    for name in ("interpolate", "compare_clip", "upscale"):  # the renders share one line ...
        assert fns[name].concurrency_limit == app.RENDER_CONCURRENCY and fns[name].concurrency_id == "render"
    assert fns["project"].concurrency_limit == app.MEMORY_CONCURRENCY and fns["project"].concurrency_id == "memory"
    assert app.demo._queue.max_size == app.QUEUE_SIZE
    a = app.parse_args([])
    assert (a.host, a.port, a.share) == ("127.0.0.1", 7860, False)
    a = app.parse_args(["--host", "0.0.0.0", "--port", "8000", "--share"])
    assert (a.host, a.port, a.share) == ("0.0.0.0", 8000, True)
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9001")
    assert app.parse_args([]).port == 9001


# ---- Memory from a photo ------------------------------------------------------------------------------------

def photo_bytes(size=(40, 48), seed=3) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def left_on_disk(gradio_app, data: bytes, name: str, wait: float = 10.0) -> list[str]:
    """Files under the app's temporary folders (Gradio's cache, scratch) holding these bytes or named like the upload,
    after waiting up to `wait` s for them to go (the app deletes a shared upload after a grace period: 3 s here)."""
    import time

    deadline = time.monotonic() + wait
    while True:
        found = []
        for p in gradio_app.tmp.rglob("*"):
            try:
                if p.is_file() and (p.name == name or p.stat().st_size == len(data) and p.read_bytes() == data):
                    found.append(str(p))
            except FileNotFoundError:  # deleted while we looked
                pass
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_project_needs_consent_and_keeps_nothing(client, gradio_app, tmp_path):
    data = photo_bytes()
    (tmp_path / "my-photo-1.png").write_bytes(data)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(tmp_path / "my-photo-1.png")), False, "tiny-dcgan", 10, False, api_name="/project")
    assert 'tick "I have the right to use this photo" to use a photo; nothing was read' in str(e.value)
    assert left_on_disk(gradio_app, data, "my-photo-1.png") == []
    # the check does see what Gradio keeps: an upload to another tab stays in its cache
    control = photo_bytes(seed=9)
    (tmp_path / "control.png").write_bytes(control)
    client.predict(handle_file(str(tmp_path / "control.png")), "x2", api_name="/upscale")
    assert left_on_disk(gradio_app, control, "control.png", wait=0)


def test_project_makes_a_looping_memory_and_keeps_no_photo(client, gradio_app, app_weights_dir, tmp_path):
    data = photo_bytes(seed=4)
    (tmp_path / "my-photo-2.png").write_bytes(data)
    path = client.predict(handle_file(str(tmp_path / "my-photo-2.png")), True, "tiny-dcgan", 10, False, 0.0, 0.0, 4, 8,
                          False, "off", 0, "", "model", api_name="/project")  # tune_steps 0, the model's frames:
    #                                                                              the recipe alone remakes the clip
    frames, fps = video.read_clip(path)
    assert frames.shape == (4, 16, 16, 3) and fps == 8
    recipe = video.read_clip_recipe(path)
    assert recipe["kind"] == "memory" and recipe["model"] == "tiny-dcgan" and recipe["space"] == "z"
    assert np.asarray(recipe["latent"]).shape == (1, 16) and recipe["synthetic"] is True
    assert "my-photo-2" not in json.dumps(recipe)
    assert left_on_disk(gradio_app, data, "my-photo-2.png") == []
    # the clip is the memory of the latent in its recipe: rendering that latent again gives the same frames
    from dgf_core.checkpoint import load_model
    from dgf_core.faces.memory import MemorySpec, memory_latents, render_memory

    model = load_model(app_weights_dir / "tiny-dcgan")
    spec = MemorySpec(frames=4, fps=8, mark=False, radius=recipe["radius"], seed=recipe["seed"])
    want = render_memory(model.generator, memory_latents(torch.tensor(recipe["latent"]), "z", spec), "z", spec)
    assert np.abs(frames.astype(int) - want.astype(int)).mean() < 8  # H.264 is lossy; 5-decimal latent
    assert "tuning" not in recipe


def test_project_with_the_persons_recording(client, gradio_app, tmp_path):
    """A voice memory through the API: its own consent, one-line refusals, the sound in the MP4, nothing kept."""
    from test_audio import syllables, write_wav

    from dgf_core.generation.audio import audio_stream_seconds

    data = photo_bytes(seed=7)
    (tmp_path / "p7.png").write_bytes(data)
    pcm, _ = syllables(1.5, 16000, seed=4)
    voice = write_wav(tmp_path / "grandpa-voicemail.wav", pcm, 16000)
    recording = voice.read_bytes()
    args = (True, "tiny-dcgan", 10, False, 0.0, 0.0, 4, 8, False, "off", 0, "", "model", False)
    with pytest.raises(AppError, match='tick "I have the right to use this recording"'):
        client.predict(handle_file(str(tmp_path / "p7.png")), *args, handle_file(str(voice)), False, True,
                       api_name="/project")
    with pytest.raises(AppError, match="no mouth_open direction"):  # the tiny model cannot move its mouth
        client.predict(handle_file(str(tmp_path / "p7.png")), *args, handle_file(str(voice)), True, True,
                       api_name="/project")
    (tmp_path / "not-audio.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    with pytest.raises(AppError, match="not a readable audio recording|no audio track"):
        client.predict(handle_file(str(tmp_path / "p7.png")), *args, handle_file(str(tmp_path / "not-audio.wav")),
                       True, False, api_name="/project")
    path = client.predict(handle_file(str(tmp_path / "p7.png")), *args, handle_file(str(voice)), True, False,
                          api_name="/project")
    frames, fps = video.read_clip(path)
    assert len(frames) == 12 and fps == 8  # as long as the recording: 1.5 s at 8 fps
    assert abs(audio_stream_seconds(path) - 1.5) <= 1 / 8
    recipe = video.read_clip_recipe(path)
    assert recipe["voice"]["used"] and recipe["voice"]["seconds"] == 1.5 and "grandpa" not in json.dumps(recipe)
    assert left_on_disk(gradio_app, recording, "grandpa-voicemail.wav") == []
    assert left_on_disk(gradio_app, data, "p7.png") == []


def test_project_renders_at_the_photo_size_with_a_motion(client, gradio_app, tmp_path):
    data = photo_bytes(size=(42, 52), seed=5)
    (tmp_path / "p5.png").write_bytes(data)
    path = client.predict(handle_file(str(tmp_path / "p5.png")), True, "tiny-dcgan", 10, False, 0.0, 0.0, 6, 8, False,
                          "off", 0, "age", api_name="/project")  # render: the default, the photo
    frames, _ = video.read_clip(path)
    assert frames.shape == (6, 52, 42, 3)  # the photo's size, not the model's 16 px
    recipe = video.read_clip_recipe(path)
    assert recipe["render"] == "photo" and recipe["motion"] == "age" and (recipe["width"], recipe["height"]) == (42, 52)
    assert recipe["regenerable_without_photo"] is False and "photo" in recipe["render_note"]
    assert left_on_disk(gradio_app, data, "p5.png") == []
    with pytest.raises(AppError, match="known motions: alive"):
        client.predict(handle_file(str(tmp_path / "p5.png")), True, "tiny-dcgan", 10, False, 0.0, 0.0, 6, 8, False,
                       "off", 0, "wink", api_name="/project")
    with pytest.raises(AppError, match="needs the edit direction smile"):
        client.predict(handle_file(str(tmp_path / "p5.png")), True, "tiny-dcgan", 10, False, 0.0, 0.0, 6, 8, False,
                       "off", 0, ["smile"], api_name="/project")


def test_motion_preview_shows_the_motion_or_what_the_model_lacks(app_weights_dir, monkeypatch):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(app_weights_dir))
    import app

    html = app.preview_motion("tiny-dcgan", ["age", "gender"])
    assert "data:image/gif;base64," in html and "age,gender" in html
    assert "needs the edit direction smile" in app.preview_motion("tiny-dcgan", ["smile"])
    assert "data:image/gif;base64," in app.preview_motion("tiny-dcgan", ["blink"])  # the eyelids draw a blink
    assert "drift" in app.preview_motion("tiny-dcgan", [])


def test_project_tunes_by_default_and_says_the_clip_needs_the_photo(client, gradio_app, tmp_path):
    data = photo_bytes(seed=6)
    (tmp_path / "p6.png").write_bytes(data)
    path = client.predict(handle_file(str(tmp_path / "p6.png")), True, "tiny-dcgan", 10, False, 0.0, 0.0, 4, 8, False,
                          api_name="/project")
    recipe = video.read_clip_recipe(path)
    assert recipe["tuning"]["steps"] == 150 and recipe["tuning"]["regenerable_without_photo"] is False
    assert "photo" in recipe["tuning"]["note"] and left_on_disk(gradio_app, data, "p6.png") == []
    with pytest.raises(Exception, match="tune_steps must be a whole number in 0..1000"):
        client.predict(handle_file(str(tmp_path / "p6.png")), True, "tiny-dcgan", 10, False, 0.0, 0.0, 4, 8, False,
                       "off", 5000, api_name="/project")


def test_project_edits_need_directions(client, tmp_path):
    (tmp_path / "p.png").write_bytes(photo_bytes())
    path = client.predict(handle_file(str(tmp_path / "p.png")), True, "tiny-dcgan", 10, False, 1.5, -1.0, 4, 8, True,
                          "x2", None, "", "model", api_name="/project")  # the model's frames, upscaled
    recipe = video.read_clip_recipe(path)
    assert recipe["edit"] == {"age": 1.5, "gender": -1.0} and recipe["mark"] is True and recipe["upscale"] == 2
    assert recipe["upscaler"]["upscaler"] == "tiny-upscaler"
    assert video.read_clip(path)[0].shape == (4, 32, 32, 3)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(tmp_path / "p.png")), True, "tiny-stylegan2", 10, False, 1.0, api_name="/project")
    assert "no edit directions for model 'tiny-stylegan2'" in str(e.value)


@pytest.mark.parametrize("content, message", [
    (b"%PDF-1.4", "this file is not an image in a supported format"),
    ("cut", "truncated or corrupt"),
    ("huge", "the limit is 16,777,216 pixels"),
])
def test_project_refuses_bad_uploads_and_keeps_nothing(client, gradio_app, tmp_path, content, message):
    if content == "huge":
        buf = io.BytesIO()
        Image.new("RGB", (4100, 4100), (7, 8, 9)).save(buf, "PNG")  # not the bytes another test leaves in Gradio's cache
        content = buf.getvalue()
    data = photo_bytes((64, 64))[:300] if content == "cut" else content
    (tmp_path / "bad-upload.png").write_bytes(data)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(tmp_path / "bad-upload.png")), True, "tiny-dcgan", 10, False, api_name="/project")
    assert message in str(e.value) and "Traceback" not in str(e.value)
    assert left_on_disk(gradio_app, data, "bad-upload.png") == []


def test_project_says_when_there_is_no_face(client, gradio_app, tmp_path):
    data = photo_bytes((96, 96), seed=5)  # noise: MTCNN (loaded on this first aligned request) finds no face
    (tmp_path / "noise.png").write_bytes(data)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(tmp_path / "noise.png")), True, "tiny-dcgan", 10, True, api_name="/project")
    assert "no face found in this photo" in str(e.value)
    assert left_on_disk(gradio_app, data, "noise.png") == []


@pytest.mark.parametrize("args, message", [
    ((5000, False), "steps must be a whole number in 1..1000, got 5000"),
    ((10, "yes"), "align must be true or false, got 'yes'"),
    ((10, False, 9.0), "age must be a number in -3..3, got 9.0"),
    ((10, False, 0.0, 0.0, 4, 8, True, "x3"), "upscale factor must be off, 2 or 4"),
])
def test_project_checks_its_inputs_after_taking_the_upload(client, gradio_app, tmp_path, args, message):
    """Gradio's own checks would refuse these before the app runs and leave the photo in its cache."""
    data = photo_bytes(seed=6)
    (tmp_path / "checked.png").write_bytes(data)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(tmp_path / "checked.png")), True, "tiny-dcgan", *args, api_name="/project")
    assert message in str(e.value)
    assert left_on_disk(gradio_app, data, "checked.png") == []


def test_project_never_takes_a_file_from_outside_the_upload_folder(gradio_app, tmp_path):
    import urllib.request

    victim = tmp_path / "not-uploaded.png"
    victim.write_bytes(photo_bytes(seed=7))
    payload = {"data": [{"path": str(victim), "meta": {"_type": "gradio.FileData"}}, True, "tiny-dcgan", 10, False,
                        0.0, 0.0, 4, 8, False, "off"]}
    req = urllib.request.Request(gradio_app.url + "/gradio_api/call/project", json.dumps(payload).encode(),
                                 {"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req, timeout=60).read())["event_id"]
    stream = urllib.request.urlopen(f"{gradio_app.url}/gradio_api/call/project/{event}", timeout=120).read().decode()
    assert stream.startswith("event: error") and victim.exists()


# ---- under load: one photo sent by several people, fair queues, unexpected errors ---------------------------------

def test_the_same_photo_sent_at_once_by_several_clients_all_succeed(gradio_app, tmp_path):
    """Gradio files identical uploads under one path: each request works on its own link, and the shared file goes
    only after the last request that names it (running or still queued: 6 requests, 2 memory slots)."""
    data = photo_bytes(seed=11)
    (tmp_path / "family.png").write_bytes(data)
    clients = [Client(gradio_app.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / str(i)))
               for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        jobs = [pool.submit(c.predict, handle_file(str(tmp_path / "family.png")), True, "tiny-dcgan", 10, False, 0.0,
                            0.0, 4, 8, False, "off", 0, api_name="/project") for c in clients]
        paths = [j.result(timeout=300) for j in jobs]
    assert len(set(paths)) == 6
    latents = [video.read_clip_recipe(p)["latent"] for p in paths]
    assert all(lat == latents[0] for lat in latents)  # the same photo, the same settings: the same memory
    assert left_on_disk(gradio_app, data, "family.png") == []  # and the photo is gone once all are done


def test_the_api_clip_writes_no_gif_unless_asked(tiny_weights_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    import app
    import ui.common
    from dgf_core.serving.scratch import ScratchDirs

    monkeypatch.setattr(ui.common, "SCRATCH", ScratchDirs(prefix="dgf-test-", parent=tmp_path))  # where the tabs look
    mp4, files = app.interpolate("1,2", 2, 8, "tiny-dcgan", progress=lambda *a, **k: None)
    assert files["gif"] is None and sorted(p.suffix for p in Path(mp4).parent.iterdir()) == [".json", ".mp4"]
    mp4, files = app.interpolate("1,2", 2, 8, "tiny-dcgan", gif=True, progress=lambda *a, **k: None)
    assert sorted(p.suffix for p in Path(mp4).parent.iterdir()) == [".gif", ".json", ".mp4"]
    assert video.read_clip_recipe(files["gif"])["seeds"] == [1, 2]


def test_unexpected_errors_give_one_line_with_an_incident_id_and_the_log_keeps_the_traceback(caplog):
    import gradio as gr

    import app

    @app.user_errors
    def broken():
        return {}["missing"]

    with pytest.raises(gr.Error) as e:
        broken()
    message = e.value.message
    assert "\n" not in message and "KeyError" in message and "Traceback" not in message
    incident = message.split("incident ")[1].split(")")[0]
    assert len(incident) == 8
    record = next(r for r in caplog.records if incident in r.getMessage())
    assert record.exc_info and record.exc_info[0] is KeyError  # the log has the traceback


def test_fast_requests_do_not_wait_behind_memories(app_weights_dir, monkeypatch, tmp_path):
    """Memories (patched to wait) fill their two slots and a third waits in line, showing its place; /generate,
    /upscale and a short clip are answered meanwhile."""
    import threading
    import time

    from gradio_client.utils import Status

    from dgf_core.evaluation.bench import free_port

    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(app_weights_dir))
    import app
    import ui.memory

    release, started = threading.Event(), []

    def slow_memory(photo, *args):
        started.append(photo)
        release.wait(120)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(ui.memory, "make_memory", slow_memory)  # the /project handler lives in ui/memory.py
    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False, analytics_enabled=False,
                        download_files=str(tmp_path / "dl"))
        (tmp_path / "p.png").write_bytes(photo_bytes(seed=12))
        memories = [client.submit(handle_file(str(tmp_path / "p.png")), True, "tiny-dcgan", api_name="/project")
                    for _ in range(app.MEMORY_CONCURRENCY + 1)]
        deadline = time.monotonic() + 60
        while len(started) < app.MEMORY_CONCURRENCY and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(started) == app.MEMORY_CONCURRENCY
        t0 = time.monotonic()
        client.predict(3, "tiny-dcgan", 1.0, api_name="/generate")
        client.predict(handle_file(str(png_file(tmp_path / "u.png"))), "x2", api_name="/upscale")
        client.predict("1,2", 2, 8, "tiny-dcgan", api_name="/interpolate")
        fast = time.monotonic() - t0
        assert fast < 30 and not any(m.done() for m in memories) and len(started) == app.MEMORY_CONCURRENCY
        deadline = time.monotonic() + 10  # one of the three waits (which one: the order they reached the server)
        while not (waiting := [st for m in memories if (st := m.status()).code == Status.IN_QUEUE]) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(waiting) == 1 and waiting[0].rank == 0 and waiting[0].queue_size >= 1  # its place in line
    finally:
        release.set()
        for m in memories:
            with pytest.raises(Exception, match="stopped by the test"):
                m.result(timeout=60)
        app.demo.close()


def test_a_128_px_model_is_shown_at_256_px_by_default_and_compare_says_each_size(app_weights_dir, monkeypatch,
                                                                                  tmp_path):
    """Generate's "auto": a 128-px model's face through the upscaler at 256 px, a smaller model's at its own pixels;
    "off" (shown as "original pixels") keeps the model's pixels. Compare says what size each model makes."""
    from conftest import make_tiny_stylegan2

    from dgf_core.generation.compare import display_factor
    from dgf_core.serving.scratch import ScratchDirs

    assert [display_factor(r, True) for r in (16, 64, 128, 256)] == [1, 1, 2, 1]
    assert display_factor(128, False) == 1  # no upscaler: the model's own pixels
    weights = tmp_path / "weights"
    shutil.copytree(app_weights_dir, weights)
    make_tiny_stylegan2(weights / "tiny-sg128", resolution=128)
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(weights))
    import app  # noqa: F401  (builds the Blocks)
    from ui import common, compare, generate

    monkeypatch.setattr(common, "SCRATCH", ScratchDirs(prefix="dgf-test-", parent=tmp_path))
    sizes = {(model, up): Image.open(generate.generate(5, model, 1.0, up)).size
             for model in ("tiny-sg128", "tiny-dcgan") for up in ("auto", "off")}
    assert sizes == {("tiny-sg128", "auto"): (256, 256), ("tiny-sg128", "off"): (128, 128),
                     ("tiny-dcgan", "auto"): (16, 16), ("tiny-dcgan", "off"): (16, 16)}
    *_, note = compare.model_cards("tiny-dcgan", "tiny-sg128")
    assert "A: 16 px, B: 128 px" in note and "same display height" in note
    assert "Both models make 16-px faces" in compare.model_cards("tiny-dcgan", "tiny-dcgan")[2]


def test_upscale_detail_blends_to_the_gan_end_and_is_refused_without_one(tmp_path, monkeypatch):
    """The Upscale tab's Detail: 0 is the PSNR end (today's output, today's recipe), above 0 the blend, recorded in the
    PNG's recipe; an upscaler without a GAN end refuses detail > 0 in one line, before reading the upload; bad values
    are refused."""
    from test_upscaler_detail import two_ended

    from test_upscaler import save_tiny_upscaler

    from dgf_core.serving.scratch import ScratchDirs

    weights = tmp_path / "weights"
    two_ended(weights / "two-ended")
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(weights))
    import app  # noqa: F401
    from ui import common, upscale

    monkeypatch.setattr(common, "SCRATCH", ScratchDirs(prefix="dgf-test-", parent=tmp_path))
    src = png_file(tmp_path / "in.png", size=(16, 16))
    outs = {d: upscale.upscale_image(str(src), "x2", d) for d in (0, 0.5, 1.0)}
    recipes = {d: json.loads(Image.open(p).text["dgf_upscale"]) for d, p in outs.items()}
    assert "detail" not in recipes[0] and recipes[0.5]["detail"] == 0.5 and recipes[1.0]["detail"] == 1.0
    pixels = {d: np.asarray(Image.open(p)).astype(int) for d, p in outs.items()}
    assert np.abs(pixels[0] - pixels[1.0]).max() > 0  # the ends differ
    assert upscale.ships_detail("two-ended")
    for bad in (-0.1, 1.5, float("nan"), "lots", True):
        with pytest.raises(Exception, match="detail must be a number from 0 to 1"):
            upscale.upscale_image(str(src), "x2", bad)
    shutil.rmtree(weights / "two-ended")
    save_tiny_upscaler(weights / "one-ended")
    assert not upscale.ships_detail("one-ended")
    with pytest.raises(Exception, match="this upscaler has no detail weights"):
        upscale.upscale_image(str(tmp_path / "not-even-read.png"), "x2", 0.5)
