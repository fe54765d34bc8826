"""The Gradio app, run as `python app.py` on a free port (fixture `gradio_app`) and driven through gradio_client."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image

from dgf_core import video
from dgf_core.pipeline import SYNTHETIC_NOTICE, FacePipeline


@pytest.fixture(scope="module")
def client(gradio_app, tmp_path_factory) -> Client:
    return Client(gradio_app.url, verbose=False, analytics_enabled=False,
                  download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def pipe(tiny_weights_dir) -> FacePipeline:
    return FacePipeline.from_pretrained(tiny_weights_dir / "tiny-dcgan", device="cpu")


def test_api_names_and_signatures(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate", "/interpolate", "/grid"} <= set(api)
    assert [p["parameter_name"] for p in api["/generate"]["parameters"]] == ["seed", "model", "truncation"]
    params = [p["parameter_name"] for p in api["/interpolate"]["parameters"]]
    assert params[:4] == ["seeds", "frames_per_transition", "fps", "model"]
    assert all(p["parameter_has_default"] for p in api["/interpolate"]["parameters"][4:])
    assert [r["component"] for r in api["/generate"]["returns"]] == ["Image"]
    assert [r["component"] for r in api["/interpolate"]["returns"]] == ["Video"]  # the MP4 only


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


BAD_INPUTS = [
    ("/generate", (-1, "tiny-dcgan", 1.0), "a seed must be an integer in 0..4294967295, got -1"),
    ("/generate", (2**32, "tiny-dcgan", 1.0), "a seed must be an integer in 0..4294967295, got 4294967296"),
    ("/generate", (1.5, "tiny-dcgan", 1.0), "got 1.5"),
    ("/generate", ("abc", "tiny-dcgan", 1.0), "got 'abc'"),
    ("/generate", (1, "nope", 1.0), "unknown model 'nope'; available: tiny-dcgan"),
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
    assert fns["interpolate"].concurrency_limit == app.RENDER_CONCURRENCY
    assert fns["interpolate"].concurrency_id == "render"
    assert app.demo._queue.max_size == app.QUEUE_SIZE
    a = app.parse_args([])
    assert (a.host, a.port, a.share) == ("127.0.0.1", 7860, False)
    a = app.parse_args(["--host", "0.0.0.0", "--port", "8000", "--share"])
    assert (a.host, a.port, a.share) == ("0.0.0.0", 8000, True)
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9001")
    assert app.parse_args([]).port == 9001


def test_app_benchmark_runs(tiny_weights_dir, monkeypatch):
    from dgf_core.bench import BenchContext, bench_app

    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    res = bench_app(BenchContext(model="tiny-dcgan", quick=True))
    assert 0 < res["first_image_s"] < 180 and 0 < res["generate_round_trip_ms"]
    assert res["target_met"] == (res["first_image_s"] <= 15 and res["generate_round_trip_ms"] <= 150)
