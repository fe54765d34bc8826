import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dgf_core.checkpoint import load_model
from dgf_core.train import STATE_FILE, TrainOptions, train

ROOT = Path(__file__).resolve().parent.parent
TINY = {"g_channels": 4, "d_channels": 4, "z_dim": 8}


def opts(data, out, **kw):
    base = dict(data=[str(data)], out=str(out), resolution=16, batch_size=8, steps=4, model=dict(TINY), log_every=1,
                sample_every=2, checkpoint_every=2, progress=False, sample_seeds=4, device="cpu")
    base.update(kw)
    return TrainOptions(**base)


def test_train_writes_model_log_samples(image_folder, tmp_path):
    records = []
    model_dir = train(opts(image_folder, tmp_path / "run"), on_step=records.append)
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["images_seen"] == 32 and log[-1]["images_per_s"] > 0
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step0000002.png", "step0000004.png"]
    m = load_model(model_dir, with_discriminator=True)
    assert m.card["images_seen"] == 32 and m.card["training_images"] > 0
    assert m.generator(torch.randn(2, 8)).shape == (2, 3, 16, 16)


def test_interrupted_then_resumed_equals_uninterrupted(image_folder, tmp_path):
    train(opts(image_folder, tmp_path / "full", steps=4, export=False))
    train(opts(image_folder, tmp_path / "part", steps=2, export=False))  # stops after step 2 ...
    train(opts(image_folder, tmp_path / "part", steps=4, export=False, resume=True))  # ... and continues
    a = load_file(str(tmp_path / "full" / STATE_FILE))
    b = load_file(str(tmp_path / "part" / STATE_FILE))
    assert a.keys() == b.keys() and any(k.startswith("opt_g.state") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and the run did change the weights (the comparison above is not vacuous)
    c = load_file(str(tmp_path / "part" / STATE_FILE))
    train(opts(image_folder, tmp_path / "other", steps=2, export=False))
    d = load_file(str(tmp_path / "other" / STATE_FILE))
    assert not torch.equal(c["G.main.0.weight"], d["G.main.0.weight"])


def test_run_folder_guards(image_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="--resume"):
        train(opts(image_folder, tmp_path / "r", resume=True))
    train(opts(image_folder, tmp_path / "r", steps=1, export=False))
    with pytest.raises(FileExistsError, match="--resume"):
        train(opts(image_folder, tmp_path / "r", steps=1))
    with pytest.raises(ValueError, match="batch_size"):
        train(opts(image_folder, tmp_path / "r", steps=2, resume=True, batch_size=4))


def test_too_few_images(image_folder, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(opts(image_folder, tmp_path / "r", batch_size=64))


def test_ddp_two_cpu_processes(image_folder, tmp_path):
    """torchrun with 2 processes on the gloo backend (DDP): each rank trains on its half of every batch."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "dgf_core",
           "train", "dcgan", "--data", str(image_folder), "--out", str(out), "--resolution", "16", "--batch-size", "8",
           "--steps", "3", "--log-every", "1", "--sample-every", "100", "--checkpoint-every", "100", "--device", "cpu",
           "--no-progress", "--threads", "1"] + [a for k, v in TINY.items() for a in ("--model", f"{k}={v}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "world 2" in r.stdout
    m = load_model(out / "model")
    assert m.card["world_size"] == 2 and m.card["images_seen"] == 24
    assert len((out / "log.jsonl").read_text().splitlines()) == 3  # only rank 0 logs


def test_sigint_stops_after_a_whole_step_and_resumes_exactly(image_folder, tmp_path):
    """A signal mid-run saves the state of the last finished step; resuming reaches the uninterrupted weights."""
    import signal

    train(opts(image_folder, tmp_path / "full", steps=4, export=False))

    def interrupt_at_step_2(rec):
        if rec["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(opts(image_folder, tmp_path / "part", steps=4, export=False), on_step=interrupt_at_step_2)
    train(opts(image_folder, tmp_path / "part", steps=4, export=False, resume=True))
    a, b = load_file(str(tmp_path / "full" / STATE_FILE)), load_file(str(tmp_path / "part" / STATE_FILE))
    for k in a:
        assert torch.equal(a[k], b[k]), k
