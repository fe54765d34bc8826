"""The benchmarks: training throughput (steady-state arithmetic, a --quick run that reports every key), generation
latency, memories, and `python app.py` alone and under load."""
import shutil

import pytest
import torch
from conftest import make_image_folder
from PIL import Image

from dgf_core.evaluation.bench import (
    BenchContext,
    _synthetic_faces,
    bench_train,
    steady_throughput,
)


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 threads on a busy 2-core machine are many times slower
    yield
    torch.set_num_threads(old)


def test_steady_throughput_excludes_warmup():
    ends = [5.0, 6.0, 7.0, 9.0]  # step 0 ends at 5 s (slow: warm-up), then 1 s, 1 s, 2 s
    r = steady_throughput(ends, batch_size=4, warmup=1)
    assert r == {"images_per_s": 4 * 3 / 4.0, "median_step_images_per_s": 4 / 1.0, "measured_steps": 3}
    r = steady_throughput(ends, batch_size=4, warmup=2)
    assert r["images_per_s"] == 4 * 2 / 3.0 and r["median_step_images_per_s"] == 4 / 1.5 and r["measured_steps"] == 2
    with pytest.raises(ValueError):
        steady_throughput(ends, batch_size=4, warmup=4)
    with pytest.raises(ValueError):
        steady_throughput(ends, batch_size=4, warmup=0)


def test_synthetic_faces(tmp_path):
    folder = _synthetic_faces(tmp_path, 3)
    files = sorted(folder.glob("*.jpg"))
    assert len(files) == 3 and Image.open(files[0]).size == (178, 218)


def test_train_benchmark_quick_reports_all_keys(tmp_path, one_thread):
    make_image_folder(tmp_path / "faces", 24)
    (tmp_path / "other").mkdir()  # a sibling folder: the ImageFolder baseline sees it as an empty class
    res = bench_train(BenchContext(data=[str(tmp_path / "faces")], quick=True))
    assert res["device"] == "cpu" and res["threads"] == 1 and isinstance(res["bf16_autocast"], bool)
    assert res["data"] == [str(tmp_path / "faces")] and res["warmup_steps"] == 1
    for key in ("dcgan_ours_images_per_s", "dcgan_ours_fp32_images_per_s", "dcgan_baseline_images_per_s",
                "stylegan2_cpu_images_per_s", "stylegan2_default_images_per_s", "stylegan2_128_images_per_s"):
        assert res[key] > 0 and res[key.replace("_images_per_s", "_median_step_images_per_s")] > 0, key
    assert res["dcgan_batch_size"] == 8 and res["dcgan_steps"] == 2 and res["stylegan2_batch_size"] == 4
    assert res["dcgan_ratio"] == pytest.approx(res["dcgan_ours_images_per_s"] / res["dcgan_baseline_images_per_s"])
    assert res["dcgan_ratio_fp32"] == pytest.approx(res["dcgan_ours_fp32_images_per_s"] / res["dcgan_baseline_images_per_s"])
    assert res["dcgan_bf16_speedup"] == pytest.approx(res["dcgan_ours_images_per_s"] / res["dcgan_ours_fp32_images_per_s"])
    assert res["dcgan_target"] == ">= 3x baseline (cpu)" and res["stylegan2_cpu_target"].startswith(">= 30 images/s")
    assert res["stylegan2_cpu_model"]["channel_max"] == 128
    # targets hold for the full batch sizes only: a --quick run reports them but does not judge them
    assert res["dcgan_met"] is None and res["stylegan2_cpu_met"] is None and res["target_met"] is None
    assert res["stylegan2_128_resolution"] == 16 and res["stylegan2_128_met"] is None
    assert res["stylegan2_128_target"].startswith(">= 15 images/s")


def test_stylegan128_latency_benchmark_measures_a_128_px_model(one_thread):
    from dgf_core.evaluation.bench import bench_stylegan128_generate

    res = bench_stylegan128_generate(BenchContext(quick=True))
    assert res["resolution"] == 128 and res["target_one_image_ms"] == 40.0 and isinstance(res["target_met"], bool)
    assert res["one_image_ms"] > 0 and res["batch64_images_per_s"] > 0


def test_memory_benchmark_times_projection_and_tuning(tmp_path):
    from conftest import make_tiny_dcgan

    from dgf_core.evaluation.bench import BenchContext, bench_memory

    folder = make_tiny_dcgan(tmp_path / "tiny-dcgan")
    res = bench_memory(BenchContext(model=str(folder), quick=True))
    assert res["projection_steps"] == 5 and res["tuning_steps"] == 5 and res["target_met"] is None
    one = res["one_thread"]
    assert one["total_s"] == pytest.approx(one["project_s"] + one["tune_s"], abs=1e-2) and one["psnr_tuned"] > 0
    photo = res["photo_memory"]  # tiny-dcgan has no motion directions: the drift, at 512 px
    assert photo["motion"] == "drift" and photo["size"] == [512, 512] and photo["frames"] == 12
    assert photo["render_and_encode_s"] > 0 and photo["target_met"] is None
    voice = res["voice_memory"]  # 2 s of syllables at 24 fps; no mouth_open direction: the mouth stays
    assert voice["frames"] == 48 and voice["mouth_follows_voice"] is False and voice["size"] == [512, 512]
    assert voice["total_s"] > voice["render_encode_mux_s"] > 0 and voice["target_met"] is None


def test_app_benchmark_runs(tiny_weights_dir, monkeypatch):
    from dgf_core.evaluation.bench import BenchContext, bench_app

    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tiny_weights_dir))
    res = bench_app(BenchContext(model="tiny-dcgan", quick=True))
    assert 0 < res["first_image_s"] < 180 and 0 < res["generate_round_trip_ms"]
    assert res["target_met"] == (res["first_image_s"] <= 15 and res["generate_round_trip_ms"] <= 150)


def test_app_load_benchmark_runs(app_weights_dir, monkeypatch):
    from dgf_core.evaluation.bench import BenchContext, bench_app_load, p95

    assert p95(list(range(1, 21))) == 19 and p95([3.0]) == 3.0
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(app_weights_dir))
    monkeypatch.setenv("DGF_UPLOAD_GRACE_S", "3")  # as for gradio_app: the photo goes 3 s after its last request, not 10
    ctx = BenchContext(model="tiny-dcgan", quick=True)
    try:
        res = bench_app_load(ctx)
    finally:
        shutil.rmtree(ctx.tmp(), ignore_errors=True)
    assert res["same_photo_8_at_once"]["succeeded"] == 8 and res["same_photo_8_at_once"]["photo_left_in_gradio_cache"] == 0
    assert res["memory_errors_meanwhile"] == [] and res["upscaler"] is True
    assert 0 < res["idle"]["generate_p50_ms"] <= res["idle"]["generate_p95_ms"]
    assert res["two_memories_running"]["upscale_p95_ms"] > 0
