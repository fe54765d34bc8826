"""Every Streamlit page through streamlit.testing.v1.AppTest, on a tiny model (DGF_WEIGHTS_DIR)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dgf_core import registry, video

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # a slow, shared CI machine


@pytest.fixture
def weights(tiny_weights_dir, monkeypatch):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    return tiny_weights_dir


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
                                                       "Interpolate: video memories between faces"]


@pytest.mark.parametrize("name", ["pages/1_Generate.py", "pages/2_Interpolate.py"])
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
    from streamlit_shared import png_bytes

    import io

    pipe = registry.load_generator("tiny-dcgan", device="cpu")
    data = png_bytes(pipe.generate([3])[0], pipe.png_text(seed=3, truncation=1.0))
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
