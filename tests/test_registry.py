"""The model registry behind the UIs' dropdowns, the shared pipeline cache and per-request scratch folders."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import make_tiny_dcgan

from dgf_core.checkpoint import CheckpointError
from dgf_core.serving import registry
from dgf_core.serving.scratch import OWNER_FILE, ScratchDirs


@pytest.fixture
def weights(tmp_path):
    make_tiny_dcgan(tmp_path / "b-dcgan", card={"description": "second"})
    make_tiny_dcgan(tmp_path / "a-dcgan", resolution=8, seed=1)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    (tmp_path / "alien").mkdir()
    (tmp_path / "alien" / "config.json").write_text(json.dumps({"format": "dgf-checkpoint/1", "family": "vae", "config": {}}))
    (tmp_path / "notes").mkdir()  # no config.json: not a model
    (tmp_path / "mtcnn").mkdir()  # the project's other weights: not listed, and not worth a warning
    (tmp_path / "mtcnn" / "config.json").write_text(json.dumps({"format": "dgf-mtcnn/1", "config": {}}))
    return tmp_path


def test_generators_lists_describable_generator_folders(weights, monkeypatch, caplog):
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(weights))
    assert registry.generators() == ["a-dcgan", "b-dcgan"]
    assert "broken" in caplog.text and "unknown family 'vae'" in caplog.text and "mtcnn" not in caplog.text
    e = registry.describe("b-dcgan")
    assert (e.family, e.kind, e.resolution, e.description) == ("dcgan", "generator", 16, "second")
    assert registry.default_generator() == "a-dcgan"
    with pytest.raises(CheckpointError, match="unknown model 'zzz'; available: a-dcgan, b-dcgan"):
        registry.describe("zzz")


def test_upscalers_are_not_generators(weights, monkeypatch):
    cfg = json.loads((weights / "a-dcgan" / "config.json").read_text())
    (weights / "sr").mkdir()
    (weights / "sr" / "config.json").write_text(json.dumps({**cfg, "family": "upscaler", "config": {}}))
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(weights))
    kinds = {e.name: e.kind for e in registry.scan()}
    assert kinds["sr"] == "upscaler" and "sr" not in registry.generators()


def test_preferred_default_and_empty_folder(weights, tmp_path_factory, monkeypatch):
    make_tiny_dcgan(weights / registry.PREFERRED_DEFAULT)
    assert registry.default_generator(weights) == registry.PREFERRED_DEFAULT
    empty = tmp_path_factory.mktemp("empty")
    assert registry.generators(empty) == [] and registry.default_generator(empty) is None
    with pytest.raises(CheckpointError, match="available: none"):
        registry.PipelineCache(weights_dir=empty).get("a-dcgan")


def test_cache_shares_loads_and_refuses_paths(weights):
    cache = registry.PipelineCache(max_models=1, device="cpu", weights_dir=weights)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("b-dcgan"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(p is got[0] for p in got)  # loaded once, shared
    assert cache.get("a-dcgan").resolution == 8
    assert cache.get("b-dcgan") is not got[0]  # max_models=1 evicted it
    for bad in (str(weights / "b-dcgan"), "../b-dcgan", "broken", None, 3):
        with pytest.raises(CheckpointError, match="unknown model"):
            cache.get(bad)


def test_cache_reloads_a_replaced_model(weights):
    cache = registry.PipelineCache(device="cpu", weights_dir=weights)
    first = cache.get("b-dcgan")
    make_tiny_dcgan(weights / "b-dcgan", seed=5)  # a newer export over the old folder
    cfg = weights / "b-dcgan" / "config.json"
    os.utime(cfg, ns=(time.time_ns(), cfg.stat().st_mtime_ns + 10**9))
    second = cache.get("b-dcgan")
    assert second is not first and second.model.weights_sha256 != first.model.weights_sha256


def test_scratch_dirs_are_unique_swept_and_removed():
    scratch = ScratchDirs(prefix="dgf-test-", max_age_s=60)
    a, b = scratch.new(), scratch.new()
    assert a != b and a.parent == b.parent == scratch.root and a.is_dir() and b.is_dir()
    (a / "clip.mp4").write_bytes(b"x")
    old = time.time() - 120
    os.utime(a, (old, old))
    assert scratch.sweep() == 1 and not a.exists() and b.exists()
    scratch.cleanup()
    assert not scratch.root.exists()


def test_upscalers_default_pair_and_upscaler_cache(weights, monkeypatch):
    from conftest import make_tiny_upscaler

    assert registry.upscalers(weights) == [] and registry.default_upscaler(weights) is None
    assert registry.default_pair(weights) == ("a-dcgan", "b-dcgan")
    make_tiny_upscaler(weights / "z-sr")
    make_tiny_upscaler(weights / registry.PREFERRED_UPSCALER, seed=1)
    assert registry.upscalers(weights) == [registry.PREFERRED_UPSCALER, "z-sr"]
    assert registry.default_upscaler(weights) == registry.PREFERRED_UPSCALER
    for name in registry.PREFERRED_PAIR:
        make_tiny_dcgan(weights / name)
    assert registry.default_pair(weights) == registry.PREFERRED_PAIR
    cache = registry.UpscalerCache(device="cpu", weights_dir=weights)
    up = cache.get("z-sr")
    assert up.name == "z-sr" and cache.get("z-sr") is up
    with pytest.raises(CheckpointError, match="unknown upscaler 'a-dcgan'; available: upscaler-x4, z-sr"):
        cache.get("a-dcgan")  # a generator is not an upscaler (and the reverse)
    with pytest.raises(CheckpointError, match="unknown model 'z-sr'"):
        registry.PipelineCache(device="cpu", weights_dir=weights).get("z-sr")


def test_default_pair_with_one_or_no_generator(tmp_path):
    make_tiny_dcgan(tmp_path / "only")
    assert registry.default_pair(tmp_path) == ("only", "only")
    assert registry.default_pair(tmp_path / "missing") == (None, None)


def test_card_metrics_show_what_exists(tmp_path):
    make_tiny_dcgan(tmp_path / "bare")
    make_tiny_dcgan(tmp_path / "full", card={
        "description": "x", "images_seen": 5_120_000, "hardware": "NVIDIA H100 80GB HBM3",
        "evaluation": {"face_detection": {"samples": {"p>=0.999": 0.8734}}, "memorization": {"ratio": 1.0412},
                       "c2st": {"samples_vs_heldout": {"accuracy": 0.6021}},
                       "coverage": {"samples": {"female_share": 0.666}, "training": {"female_share": 0.6308}}}})
    make_tiny_dcgan(tmp_path / "odd", card={"evaluation": {"face_detection": "n/a", "c2st": {"skipped": "x"}},
                                            "images_seen": "many"})
    metrics = {e.name: registry.card_metrics(e) for e in registry.scan(tmp_path)}
    told = "told from real faces by a classifier (50%: chance)"
    assert metrics["full"] == {"faces detected (p>=0.999)": "87.3%", told: "60.2%",
                               "share of women": "66.6% (training faces 63.1%)", "memorization ratio": "1.041",
                               "images seen": "5,120,000", "hardware": "NVIDIA H100 80GB HBM3"}
    assert metrics["bare"] == metrics["odd"] == {"faces detected (p>=0.999)": "not evaluated", told: "not evaluated",
                                                 "share of women": "not evaluated",
                                                 "memorization ratio": "not evaluated", "images seen": "unknown",
                                                 "hardware": "unknown"}
    make_tiny_dcgan(tmp_path / "continued", card={"images_seen": 112_000, "images_seen_total": 304_000})
    assert registry.card_metrics(registry.describe("continued", tmp_path))["images seen"] == "304,000"
    text = registry.card_markdown(registry.describe("full", tmp_path))
    assert text.startswith("**full** (dcgan, 16×16)") and "- memorization ratio: 1.041" in text
    assert "status" not in text and registry.describe_line(registry.describe("full", tmp_path)) == "dcgan, 16×16. x"


def test_a_model_in_training_says_so_everywhere(tmp_path, monkeypatch):
    from ui.common import model_info

    make_tiny_dcgan(tmp_path / "wip", card={"description": "x", "status": "in training: not yet as real as the others"})
    e = registry.describe("wip", tmp_path)
    assert registry.status(e) == "in training: not yet as real as the others"
    assert registry.card_markdown(e).split("\n")[1] == "- **status: in training: not yet as real as the others**"
    assert registry.describe_line(e).endswith("x **Status: in training: not yet as real as the others**")
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tmp_path))
    assert "Status: in training" in model_info("wip")


def test_scratch_cap_evicts_the_oldest_folders_first(tmp_path):
    scratch = ScratchDirs(prefix="dgf-test-", max_age_s=3600, max_bytes=3000, min_age_s=30, parent=tmp_path)
    now = time.time()
    *folders, young = [scratch.new() for _ in range(5)]
    for i, d in enumerate(folders + [young]):
        (d / "clip.mp4").write_bytes(b"x" * 1000)
        os.utime(d, (now - 1000 + i * 100, now - 1000 + i * 100))  # folders[0] is the oldest
    os.utime(young, (now - 5, now - 5))  # under min_age_s: spared
    assert scratch.sweep(now) == 2  # 5000 bytes -> 3000: the two oldest go
    assert [d.exists() for d in folders] == [False, False, True, True] and young.exists()
    assert scratch.total_bytes() <= 3000 + 200  # plus the owner record
    (young / "more.mp4").write_bytes(b"x" * 5000)
    scratch.sweep(now)  # over the cap again: everything old enough goes, the young folder stays
    assert [d.exists() for d in folders] == [False] * 4 and young.exists()
    scratch.cleanup()


def test_scratch_of_dead_processes_is_removed_at_start_never_a_live_ones(tmp_path):
    import json
    import subprocess
    import sys

    code = ("import sys, time; sys.path.insert(0, sys.argv[2]); from dgf_core.serving.scratch import ScratchDirs; "
            "s = ScratchDirs(prefix='dgf-app-', parent=sys.argv[1]); (s.new() / 'x.gif').write_bytes(b'x'); "
            "print(s.root, flush=True); time.sleep(float(sys.argv[3]))")
    repo = str(Path(__file__).resolve().parent.parent)
    live = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), repo, "60"], stdout=subprocess.PIPE, text=True)
    dead = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), repo, "60"], stdout=subprocess.PIPE, text=True)
    try:
        live_root, dead_root = Path(live.stdout.readline().strip()), Path(dead.stdout.readline().strip())
        dead.kill()  # SIGKILL: no atexit, its folder stays
        dead.wait(10)
        assert dead_root.is_dir() and live_root.is_dir()
        reused = tmp_path / "dgf-app-reused"  # a recorded PID that is alive now, but a different process
        reused.mkdir()
        (reused / "owner.json").write_text(json.dumps({"pid": live.pid, "started": "1"}))
        foreign = tmp_path / "dgf-app-foreign"  # no owner record: not ours to judge
        foreign.mkdir()
        scratch = ScratchDirs(prefix="dgf-app-", parent=tmp_path)
        assert sorted(scratch.stale_removed) == sorted([dead_root, reused])
        assert not dead_root.exists() and not reused.exists()
        assert live_root.is_dir() and (live_root / OWNER_FILE).is_file() and foreign.is_dir()
        scratch.cleanup()
    finally:
        live.kill()
        live.wait(10)
