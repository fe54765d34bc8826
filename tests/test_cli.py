import json

import pytest
from conftest import make_image_folder, make_tiny_dcgan
from PIL import Image

from dgf_core.cli import main


@pytest.fixture
def weights(tmp_path, monkeypatch):
    make_tiny_dcgan(tmp_path / "w" / "tiny")
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tmp_path / "w"))
    return tmp_path / "w"


def test_generate_writes_one_png_per_seed_with_provenance(weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--model", "tiny", "--seeds", "40-42", "--out", str(out), "--grid", str(tmp_path / "g.png")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seed000040.png", "seed000041.png", "seed000042.png"]
    img = Image.open(out / "seed000042.png")
    assert img.size == (16, 16)
    recipe = json.loads(img.text["dgf_recipe"])
    assert recipe["seed"] == 42 and recipe["model"] == "tiny" and recipe["synthetic"] is True
    assert len(recipe["weights_sha256"]) == 64 and "Synthetic" in img.text["Description"]
    assert Image.open(tmp_path / "g.png").size == (2 * 18 + 2, 2 * 18 + 2)  # 3 images: a 2x2 grid, 2 px padding


def test_generate_by_path_and_dry_run(weights, tmp_path, capsys):
    assert main(["generate", "--model", str(weights / "tiny"), "--seeds", "1", "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    assert not (tmp_path / "o").exists()
    assert '"seeds": 1' in capsys.readouterr().out


@pytest.mark.parametrize("model, extra, message", [
    ("tiny", ["--seeds", "abc"], "seed must be an integer"),
    ("tiny", ["--seeds", "-3"], "seed must be an integer"),
    ("tiny", ["--seeds", "4294967296"], "seed must be an integer"),
    ("tiny", ["--seeds", "1", "--truncation", "2"], "truncation"),
    ("no-such-model", ["--seeds", "1"], "available: tiny"),
    ("tiny", ["--seeds", "1-4", "--grid", "8"], "must end in .png"),  # a grid size where a file name goes
])
def test_generate_errors_are_one_clear_line(weights, tmp_path, capsys, model, extra, message):
    assert main(["generate", "--model", model, "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_corrupt_checkpoint_is_a_clear_error(weights, tmp_path, capsys):
    (weights / "tiny" / "model.safetensors").write_bytes(b"garbage")
    assert main(["generate", "--model", "tiny", "--seeds", "1", "--out", str(tmp_path / "o")]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_train_dry_run_and_bad_data(tmp_path, capsys, image_folder):
    assert main(["train", "dcgan", "--data", str(image_folder), "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["config"]["z_dim"] == 100 and not (tmp_path / "r").exists()
    assert main(["train", "dcgan", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "dcgan", "--data", str(image_folder), "--out", str(tmp_path / "r"), "--steps", "0"]) == 2
    assert main(["train", "dcgan", "--data", str(image_folder), "--out", str(tmp_path / "r"), "--model", "nope=1", "--dry-run"]) == 2
    assert "unknown dcgan config fields" in capsys.readouterr().err


def test_train_dry_run_checks_init_from(tmp_path, capsys, image_folder):
    from conftest import make_tiny_dcgan

    src = make_tiny_dcgan(tmp_path / "shipped")  # g_channels 8, z_dim 16
    base = ["train", "dcgan", "--data", str(image_folder), "--out", str(tmp_path / "r"), "--resolution", "16",
            "--init-from", str(src), "--dry-run"]
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["config"]["g_channels"] == 8  # the folder's architecture
    assert main(base + ["--model", "g_channels=16"]) == 2
    assert "differs from this run" in capsys.readouterr().err
    assert main(["train", "stylegan2", *base[2:]]) == 2
    assert "not 'stylegan2'" in capsys.readouterr().err


def test_evaluate_on_a_tiny_model(weights, tmp_path, capsys):
    make_image_folder(tmp_path / "real", 60)  # 60 names give a few held-out files (crc32 % 20 == 0)
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", "tiny", "--real", str(tmp_path / "real"), "--n", "8", "--json", str(out), "--write-card"]) == 0
    res = json.loads(out.read_text())
    det = res["face_detection"]
    assert set(det["samples"]) == {"p>=0.9", "p>=0.99", "p>=0.999"}
    assert all(0.0 <= v <= 1.0 for v in det["samples"].values())
    memo = res["memorization"]
    assert memo["n_samples"] == 8 and memo["ratio"] > 0 and memo["n_train"] + res["n_heldout_real"] == 60
    assert "too few images" in res["c2st"]["skipped"]  # 4 held-out faces: no two-sample test
    assert "no attribute classifier" in res["coverage"]["skipped"]  # the weights folder has none: skipped, not a crash
    card = json.loads((weights / "tiny" / "config.json").read_text())["card"]
    assert card["evaluation"]["memorization"]["ratio"] == memo["ratio"]
    assert res["command"].startswith("python -m dgf_core evaluate")


def test_evaluate_dry_run_shows_what_runs(weights, capsys, image_folder):
    assert main(["evaluate", "--model", "tiny", "--real", str(image_folder), "--no-c2st", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)["evaluate"]
    assert cfg["c2st"] is False and cfg["coverage"] is True and cfg["n"] == 1000 and cfg["c2st_repeats"] == 1


def test_evaluate_errors(weights, tmp_path, capsys, image_folder):
    assert main(["evaluate", "--model", "tiny", "--real", str(tmp_path / "nope")]) == 2
    assert main(["evaluate", "--model", "tiny", "--real", str(image_folder), "--inception-weights", str(tmp_path / "x.pth")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["evaluate", "--model", "tiny", "--real", str(image_folder), "--c2st-repeats", "0"]) == 2
    assert "--c2st-repeats must be at least 1" in capsys.readouterr().err


def test_bench_quick_generate(weights, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "tiny", "--only", "generate", "--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["generate"]["one_image_ms"] > 0 and res["machine"]["cores"] >= 1


def _subcommands():
    import argparse

    from dgf_core.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_shared_flags_mean_the_same_in_every_command():
    """--device, --threads, --dry-run and --seed come from cli.common: same type, default and wording everywhere."""
    from dgf_core.cli.common import DEVICE_HELP

    seen = set()
    for name, p in _subcommands().items():
        flags = {o: a for a in p._actions for o in a.option_strings}
        if "--device" in flags:
            seen.add("device")
            assert flags["--device"].default in ("auto", "cpu") and flags["--device"].help.startswith(DEVICE_HELP), name
        if "--threads" in flags:
            seen.add("threads")
            assert flags["--threads"].type is int and flags["--threads"].default is None, name
        if "--dry-run" in flags:
            seen.add("dry-run")
            assert flags["--dry-run"].nargs == 0 and flags["--dry-run"].default is False and flags["--dry-run"].help, name
        if "--seed" in flags:
            seen.add("seed")
            assert flags["--seed"].type is int and flags["--seed"].default == 0 and flags["--seed"].help, name
    assert seen == {"device", "threads", "dry-run", "seed"}


def test_threads_flag_sets_torch_threads():
    import torch

    from dgf_core.cli.common import set_threads

    old = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)  # leaves it alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)
