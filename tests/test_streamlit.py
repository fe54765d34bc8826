"""Every Streamlit page through streamlit.testing.v1.AppTest, on a tiny model (DGF_WEIGHTS_DIR)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from dgf_core.generation import video
from dgf_core.serving import registry

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # a slow, shared CI machine


@pytest.fixture
def weights(tiny_weights_dir, monkeypatch):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    return tiny_weights_dir


@pytest.fixture
def app_weights(app_weights_dir, monkeypatch):
    """Two generators (tiny-dcgan 16 px, tiny-stylegan2 8 px) and an upscaler (tiny-upscaler)."""
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(app_weights_dir))
    return app_weights_dir


@pytest.fixture
def loads(monkeypatch):
    """Count model loads (after clearing the st.cache_resource cache)."""
    import streamlit_shared

    streamlit_shared._load.clear()
    calls = []
    real = registry.load_generator
    monkeypatch.setattr(registry, "load_generator", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    yield calls
    streamlit_shared._load.clear()


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / name), default_timeout=TIMEOUT)


def test_home_lists_the_models_and_pages(weights):
    at = page("streamlit_app.py").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "synthetic" in text and "**tiny-dcgan**: generator, dcgan, 16x16" in text
    assert [p.label for p in at.get("page_link")] == ["Generate: click through seeds",
                                                       "Interpolate: video memories between faces",
                                                       "Compare: the same seeds in two models",
                                                       "Upscale: enlarge a face 2x or 4x",
                                                       "Memory from a photo: a looping clip of a face you have the "
                                                       "right to use"]


def test_home_lists_upscalers_without_a_resolution(app_weights):
    at = page("streamlit_app.py").run()
    text = " ".join(m.value for m in at.markdown)
    assert "**tiny-upscaler**: upscaler, upscaler. tiny test upscaler" in text


@pytest.mark.parametrize("name", ["pages/1_Generate.py", "pages/2_Interpolate.py", "pages/3_Compare.py",
                                  "pages/5_Memory.py"])
def test_pages_say_clearly_when_there_is_no_model(tmp_path, monkeypatch, name):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tmp_path))
    at = page(name).run()
    assert not at.exception
    assert "No generator found in the weights folder" in at.error[0].value


def test_generate_page_steps_through_seeds(weights, loads):
    at = page("pages/1_Generate.py").run()
    assert not at.exception and not at.error
    assert at.json[0].value and json.loads(at.json[0].value)["seed"] == 42
    assert at.get("download_button")[0].label == "Download PNG"
    at.button(key="next").click().run()
    assert at.number_input(key="seed").value == 43 and json.loads(at.json[0].value)["seed"] == 43
    at.number_input(key="seed").set_value(0).run()
    at.button(key="prev").click().run()
    assert at.number_input(key="seed").value == 0  # stays in range
    at.button(key="random").click().run()
    assert 0 <= at.number_input(key="seed").value < 10_000
    at.slider(key="truncation").set_value(0.5).run()
    assert json.loads(at.json[0].value)["truncation"] == 0.5
    assert not at.exception and loads == ["tiny-dcgan"]  # one load, cached across reruns


def test_generate_page_grid_of_consecutive_seeds(weights):
    at = page("pages/1_Generate.py")
    at.session_state["seed"] = 100
    at.run()
    at.slider(key="grid").set_value(5).run()
    assert not at.exception
    grid = at.image[-1].proto
    assert [img.caption for img in grid.imgs] == [f"seed {s}" for s in range(100, 105)]


def test_png_download_carries_its_recipe(weights):
    import io

    from dgf_core.generation.compare import face_picture

    pipe = registry.load_generator("tiny-dcgan", device="cpu")
    data = face_picture(pipe, 3).png_bytes()  # what the Generate page's Download PNG button hands over
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (16, 16) and json.loads(im.text["dgf_recipe"])["seed"] == 3


def test_interpolate_page_renders_a_clip(weights, loads, tmp_path):
    at = page("pages/2_Interpolate.py").run()
    assert not at.exception and not at.error
    assert at.radio(key="scale").value == 8  # a 16 px model is shown at 128 px
    at.text_input(key="keyframes").input("4, 5, 6")
    at.slider(key="frames").set_value(3)
    at.slider(key="fps").set_value(6)
    at.checkbox(key="loop").uncheck()
    at.radio(key="method").set_value("lerp")
    at.button(key="render").click().run()
    assert not at.exception and not at.error
    clip = at.session_state["clip"]
    for ext in ("mp4", "gif"):
        path = tmp_path / f"clip.{ext}"
        path.write_bytes(clip[ext])
        frames, fps = video.read_clip(path)
        assert frames.shape == (7, 128, 128, 3)
        assert video.read_clip_recipe(path) == clip["recipe"]
    assert clip["recipe"]["seeds"] == [4, 5, 6] and clip["recipe"]["method"] == "lerp" and clip["recipe"]["loop"] is False
    assert [b.label for b in at.get("download_button")] == ["Download MP4", "Download GIF", "Download recipe (JSON)"]
    assert at.progress[0].value == 100
    assert loads == ["tiny-dcgan"]


@pytest.mark.parametrize("keyframes, frames, message", [
    ("7", 24, "a clip needs at least two keyframe seeds"),
    ("1, x", 24, "a seed must be an integer"),
    ("0-20", 24, "the limit is 480"),
])
def test_interpolate_page_explains_bad_input(weights, keyframes, frames, message):
    at = page("pages/2_Interpolate.py").run()
    at.text_input(key="keyframes").input(keyframes)
    at.slider(key="frames").set_value(frames)
    at.button(key="render").click().run()
    assert not at.exception
    assert message in at.error[0].value
    assert "clip" not in at.session_state


# ---- upscale option ---------------------------------------------------------------------------------------

def test_without_an_upscaler_the_option_is_disabled_with_a_note(weights):
    at = page("pages/1_Generate.py").run()
    assert not at.exception and not at.error
    assert at.radio(key="upscale").disabled and at.radio(key="upscale").options == ["off"]
    assert any("no upscaler in the weights folder" in c.value.lower() for c in at.caption)
    assert "upscale" not in json.loads(at.json[0].value)


def test_generate_page_upscales(app_weights):
    at = page("pages/1_Generate.py").run()
    assert at.radio(key="upscale").options == ["auto", "original pixels", "x2", "x4"]
    assert at.radio(key="upscale").value == "auto" and not at.radio(key="upscale").disabled
    assert "upscale" not in json.loads(at.json[0].value)  # auto: a 16-px face at its own pixels (128 px: x2)
    at.radio(key="upscale").set_value("x4").run()
    assert not at.exception and not at.error
    recipe = json.loads(at.json[0].value)
    assert recipe["upscale"]["upscaler"] == "tiny-upscaler" and recipe["upscale"]["factor"] == 4
    assert recipe["model"] == "tiny-dcgan" and recipe["seed"] == 42


def test_interpolate_page_upscales(app_weights, tmp_path):
    at = page("pages/2_Interpolate.py").run()
    at.radio(key="upscale").set_value("x2").run()
    assert at.radio(key="scale").value == 8  # 16 px x2 = 32 px, shown at 256
    at.radio(key="scale").set_value(2)
    at.text_input(key="keyframes").input("4, 5")
    at.slider(key="frames").set_value(2)
    at.checkbox(key="loop").uncheck()
    at.button(key="render").click().run()
    assert not at.exception and not at.error
    clip = at.session_state["clip"]
    (tmp_path / "c.mp4").write_bytes(clip["mp4"])
    assert video.read_clip(tmp_path / "c.mp4")[0].shape == (3, 64, 64, 3)
    assert clip["recipe"]["upscale"]["factor"] == 2


# ---- Compare -----------------------------------------------------------------------------------------------

def test_compare_page_shows_both_models_with_their_cards(app_weights, loads):
    at = page("pages/3_Compare.py").run()
    assert not at.exception and not at.error
    assert (at.selectbox(key="model_a").value, at.selectbox(key="model_b").value) == ("tiny-dcgan", "tiny-stylegan2")
    text = " ".join(m.value for m in at.markdown)
    assert "**tiny-stylegan2**" in text and "memorization ratio: 1.250" in text and "images seen: 1,234" in text
    assert "**tiny-dcgan**" in text and "faces detected (p>=0.999): not evaluated" in text
    assert at.image[0].proto.imgs[0].caption == "tiny-dcgan | tiny-stylegan2, seeds 1, 2, 3 (synthetic)"
    at.text_input(key="seeds").input("9").run()
    assert at.image[0].proto.imgs[0].caption.endswith("seeds 9 (synthetic)")
    assert sorted(loads) == ["tiny-dcgan", "tiny-stylegan2"]


def test_compare_page_renders_a_side_by_side_clip(app_weights, tmp_path):
    at = page("pages/3_Compare.py").run()
    at.text_input(key="keyframes").input("3, 4")
    at.slider(key="frames").set_value(2)
    at.slider(key="fps").set_value(6)
    at.radio(key="scale").set_value(2)
    at.button(key="render").click().run()
    assert not at.exception and not at.error
    clip = at.session_state["compare_clip"]
    (tmp_path / "c.mp4").write_bytes(clip["mp4"])
    frames, fps = video.read_clip(tmp_path / "c.mp4")
    assert frames.shape == (4, 32, 64, 3) and fps == 6
    assert video.read_clip_recipe(tmp_path / "c.mp4") == clip["recipe"]
    assert [m["model"] for m in clip["recipe"]["models"]] == ["tiny-dcgan", "tiny-stylegan2"]
    assert [b.label for b in at.get("download_button")][-2:] == ["Download MP4", "Download recipe (JSON)"]


@pytest.mark.parametrize("seeds, message", [("x", "got 'x'"), ("0-20", "too many seeds: at most 16"), ("", "no seeds")])
def test_compare_page_explains_bad_seeds(app_weights, seeds, message):
    at = page("pages/3_Compare.py").run()
    at.text_input(key="seeds").input(seeds).run()
    assert not at.exception and message in at.error[0].value


# ---- Upscale -----------------------------------------------------------------------------------------------

def png_of(size=(8, 8), seed=0) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_upscale_page_without_an_upscaler(weights):
    at = page("pages/4_Upscale.py").run()
    assert not at.exception and "No upscaler in the weights folder" in at.warning[0].value
    assert not at.file_uploader


def test_upscale_page_shows_before_and_after(app_weights):
    at = page("pages/4_Upscale.py").run()
    assert not at.exception and not at.error and not at.get("download_button")
    at.file_uploader(key="upload").set_value(("face.png", png_of(), "image/png")).run()
    assert not at.exception and not at.error
    captions = [img.caption for im in at.image for img in im.proto.imgs]
    assert captions == ["Before: 8x8", "After: 32x32 (x4, tiny-upscaler)"]
    recipe = json.loads(at.json[0].value)
    assert recipe["upscaler"] == "tiny-upscaler" and recipe["factor"] == 4 and len(recipe["weights_sha256"]) == 64
    assert at.get("download_button")[0].label == "Download PNG"
    at.radio(key="factor").set_value("x2").run()
    assert [img.caption for im in at.image for img in im.proto.imgs][1] == "After: 16x16 (x2, tiny-upscaler)"


def test_upscale_page_detail_slider_is_disabled_without_detail_weights(app_weights):
    at = page("pages/4_Upscale.py").run()
    assert at.slider(key="detail").value == 0.0 and at.slider(key="detail").disabled
    assert any("this upscaler has no detail weights" in c.value for c in at.caption)


def test_upscale_page_detail_slider_blends_the_gan_end(app_weights_dir, tmp_path, monkeypatch):
    import shutil

    from dgf_core.checkpoint import save_detail_weights
    from dgf_core.models.upscaler import Generator, UpscalerConfig

    root = tmp_path / "weights"
    shutil.copytree(app_weights_dir / "tiny-upscaler", root / "tiny-upscaler")
    cfg = UpscalerConfig(**json.loads((root / "tiny-upscaler" / "config.json").read_text())["config"])
    torch.manual_seed(1)
    gan = Generator(cfg)
    with torch.no_grad():
        gan.to_rgb4.weight.normal_(0, 0.1)
    save_detail_weights(root / "tiny-upscaler", gan, {"phase": "gan"})
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(root))
    at = page("pages/4_Upscale.py").run()
    assert not at.exception and not at.slider(key="detail").disabled and at.slider(key="detail").value == 0.0
    at.file_uploader(key="upload").set_value(("face.png", png_of((8, 8)), "image/png")).run()
    assert "detail" not in json.loads(at.json[0].value)  # detail 0: the recipe of before
    at.slider(key="detail").set_value(1.0).run()
    assert not at.exception and not at.error
    recipe = json.loads(at.json[0].value)
    assert recipe["detail"] == 1.0 and len(recipe["detail_weights_sha256"]) == 64
    assert [img.caption for im in at.image for img in im.proto.imgs][1] == "After: 32x32 (x4, tiny-upscaler, detail 1)"


@pytest.mark.parametrize("name, data, message", [
    ("notes.png", b"hello", "this file is not an image"),
    ("cut.png", png_of((64, 64))[:200], "truncated or corrupt"),
    ("wide.png", png_of((600, 8)), "images must be 4..512 pixels a side"),
])
def test_upscale_page_explains_bad_uploads(app_weights, name, data, message):
    at = page("pages/4_Upscale.py").run()
    at.file_uploader(key="upload").set_value((name, data, "image/png")).run()
    assert not at.exception and message in at.error[0].value
    assert not at.get("download_button")


# ---- Memory from a photo -------------------------------------------------------------------------------------

def test_memory_page_is_gated_by_consent(app_weights):
    at = page("pages/5_Memory.py").run()
    assert not at.exception and not at.error
    assert at.file_uploader(key="photo").disabled and at.button(key="make").disabled
    at.checkbox(key="consent").check().run()
    assert not at.file_uploader(key="photo").disabled and at.button(key="make").disabled  # no photo yet
    at.file_uploader(key="photo").set_value(("me.png", png_of((40, 48)), "image/png")).run()
    assert not at.button(key="make").disabled
    at.checkbox(key="consent").uncheck().run()
    assert at.button(key="make").disabled


def test_memory_page_makes_a_clip_from_the_latent(app_weights, tmp_path):
    at = page("pages/5_Memory.py").run()
    assert not at.slider(key="age").disabled  # tiny-dcgan has edit directions
    at.checkbox(key="consent").check()
    at.checkbox(key="align").uncheck()
    at.slider(key="steps").set_value(10)
    at.slider(key="frames").set_value(4)
    at.slider(key="fps").set_value(8)
    at.slider(key="age").set_value(1.0)
    at.run()
    at.file_uploader(key="photo").set_value(("me.png", png_of((40, 48)), "image/png")).run()
    at.button(key="make").click().run()
    assert not at.exception and not at.error
    memory = at.session_state["memory"]
    (tmp_path / "m.mp4").write_bytes(memory["mp4"])
    frames, fps = video.read_clip(tmp_path / "m.mp4")
    assert frames.shape == (4, 48, 40, 3) and fps == 8  # rendered at the photo's size (the default)
    recipe = video.read_clip_recipe(tmp_path / "m.mp4")
    assert recipe == json.loads(json.dumps(memory["recipe"]))
    assert recipe["kind"] == "memory" and recipe["edit"] == {"age": 1.0} and np.asarray(recipe["latent"]).shape == (1, 16)
    assert recipe["render"] == "photo" and recipe["regenerable_without_photo"] is False
    assert "me.png" not in json.dumps(recipe)
    assert [b.label for b in at.get("download_button")] == ["Download MP4", "Download GIF", "Download recipe (JSON)"]


def test_memory_page_with_the_persons_recording(app_weights, tmp_path):
    from test_audio import syllables, write_wav

    from dgf_core.generation.audio import audio_stream_seconds

    pcm, _ = syllables(1.5, 16000, seed=5)
    voice = write_wav(tmp_path / "v.wav", pcm, 16000).read_bytes()
    at = page("pages/5_Memory.py").run()
    assert at.file_uploader(key="voice").disabled  # until its own consent box is ticked
    at.checkbox(key="consent").check()
    at.checkbox(key="align").uncheck()
    at.slider(key="steps").set_value(10)
    at.slider(key=f"tune_steps-{at.session_state['model']}").set_value(0)
    at.slider(key="fps").set_value(8)
    at.checkbox(key="voice_consent").check()
    at.run()
    at.file_uploader(key="photo").set_value(("me.png", png_of((40, 48)), "image/png"))
    at.file_uploader(key="voice").set_value(("v.wav", voice, "audio/wav")).run()
    at.button(key="make").click().run()
    assert at.error and "no mouth_open direction" in at.error[0].value  # the tiny model cannot move its mouth
    at.checkbox(key="mouth").uncheck().run()
    at.checkbox(key="gif").uncheck().run()  # an MP4 alone: streamed, frame by frame
    at.button(key="make").click().run()
    assert not at.exception and not at.error
    assert at.session_state["memory"]["gif"] is None
    assert [b.label for b in at.get("download_button")] == ["Download MP4", "Download recipe (JSON)"]
    (tmp_path / "m.mp4").write_bytes(at.session_state["memory"]["mp4"])
    assert len(video.read_clip(tmp_path / "m.mp4")[0]) == 12 and abs(audio_stream_seconds(tmp_path / "m.mp4") - 1.5) <= 0.125
    assert video.read_clip_recipe(tmp_path / "m.mp4")["voice"]["seconds"] == 1.5


def test_memory_page_previews_motions_and_renders_the_model_frames(app_weights, tmp_path):
    at = page("pages/5_Memory.py").run()
    at.multiselect(key="motion").set_value(["smile"]).run()
    assert not at.exception and any("needs the edit direction smile" in c.value for c in at.caption)
    at.multiselect(key="motion").set_value(["age"]).run()
    assert any(img.caption == "age on the model's own face" for im in at.image for img in im.proto.imgs)
    at.radio(key="render").set_value("model")
    at.checkbox(key="consent").check()
    at.checkbox(key="align").uncheck()
    at.slider(key="steps").set_value(10)
    at.slider(key=f"tune_steps-{at.session_state['model']}").set_value(0)
    at.slider(key="frames").set_value(4)
    at.run()
    at.file_uploader(key="photo").set_value(("me.png", png_of((40, 48)), "image/png")).run()
    at.button(key="make").click().run()
    assert not at.exception and not at.error
    recipe = at.session_state["memory"]["recipe"]
    assert recipe["render"] == "model" and recipe["motion"] == "age"
    (tmp_path / "m.mp4").write_bytes(at.session_state["memory"]["mp4"])
    assert video.read_clip(tmp_path / "m.mp4")[0].shape == (4, 16, 16, 3)


def test_memory_page_without_edit_directions(app_weights):
    at = page("pages/5_Memory.py")
    at.session_state["model"] = "tiny-stylegan2"
    at.run()
    assert not at.exception and at.slider(key="age").disabled and at.slider(key="gender").disabled
    assert any("has no edit directions" in c.value for c in at.caption)


@pytest.mark.parametrize("data, align, message", [
    (b"hello", False, "this file is not an image"),
    (png_of((64, 64))[:200], False, "truncated or corrupt"),
    (png_of((96, 96)), True, "no face found in this photo"),
])
def test_memory_page_explains_bad_photos(app_weights, data, align, message):
    at = page("pages/5_Memory.py").run()
    at.checkbox(key="consent").check()
    if not align:
        at.checkbox(key="align").uncheck()
    at.run()
    at.file_uploader(key="photo").set_value(("p.png", data, "image/png")).run()
    at.button(key="make").click().run()
    assert not at.exception and message in at.error[0].value
    assert "memory" not in at.session_state
