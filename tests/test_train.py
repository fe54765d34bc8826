import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from dgf_core.checkpoint import load_model, read_config
from dgf_core.data import load_image_set
from dgf_core.training.losses import ema_decay_at
from dgf_core.training.loop import STATE_FILE, TrainOptions, train, truncate_log

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
    train(opts(image_folder, tmp_path / "r", steps=1, export=False))
    with pytest.raises(FileExistsError, match="--resume"):
        train(opts(image_folder, tmp_path / "r", steps=1))
    with pytest.raises(ValueError, match="batch_size"):
        train(opts(image_folder, tmp_path / "r", steps=2, resume=True, batch_size=4))


def test_resume_starts_a_run_where_there_is_none_and_a_failed_start_leaves_no_folder(image_folder, tmp_path):
    """One command starts or continues a run: --resume on a folder without a state trains from step 0, exactly as a
    run without --resume would."""
    train(opts(image_folder, tmp_path / "plain", steps=2, export=False))
    train(opts(image_folder, tmp_path / "new", steps=2, export=False, resume=True))
    a, b = load_file(str(tmp_path / "plain" / STATE_FILE)), load_file(str(tmp_path / "new" / STATE_FILE))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(opts(image_folder, tmp_path / "never", batch_size=64, resume=True))
    assert not (tmp_path / "never").exists()  # the folder it made is gone again
    (tmp_path / "kept").mkdir()
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(opts(image_folder, tmp_path / "kept", batch_size=64))
    assert (tmp_path / "kept").is_dir()  # one that was there before stays


def test_state_file_has_ordinary_permissions(image_folder, tmp_path):
    """safetensors writes through a 0600 temporary file of its own; the state ends up 0666 less the umask."""
    umask = os.umask(0o022)
    try:
        train(opts(image_folder, tmp_path / "r", steps=2, export=False))
    finally:
        os.umask(umask)
    assert (tmp_path / "r" / STATE_FILE).stat().st_mode & 0o777 == 0o644


KILLED_TRAINER = """
import json, os, signal, sys, threading
sys.path.insert(0, sys.argv[4])
import torch
import dgf_core.checkpoint as ckpt
from dgf_core.training.loop import TrainOptions, train

kill_at, where = int(sys.argv[2]), sys.argv[3]
real, calls = ckpt.save_file, [0]

def save_file(tensors, filename, metadata=None):
    calls[0] += 1
    if calls[0] == kill_at:
        if where == "before-rename":  # our temporary file is complete, the rename never happens
            real(tensors, filename, metadata=metadata)
            os.kill(os.getpid(), signal.SIGKILL)
        folder = os.path.dirname(filename)

        def watch():  # SIGKILL while safetensors writes its own temporary file
            while True:
                if any(n.startswith(".tmp") for n in os.listdir(folder)):
                    os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()
        tensors = {**tensors, "zz_pad": torch.zeros(25_000_000)}  # 100 MB: a write long enough to be caught in it
    real(tensors, filename, metadata=metadata)

ckpt.save_file = save_file
train(TrainOptions(**json.loads(sys.argv[1])))
"""


@pytest.mark.parametrize("where", ["in-safetensors-write", "before-rename"])
def test_sigkill_during_a_checkpoint_write_then_resume(image_folder, tmp_path, where):
    """A real SIGKILL of a training process while it writes its second state (step 4 of 6): the resumed run starts at
    the saved step 2, removes the write's leftovers, logs each step once and ends with the uninterrupted weights."""
    from dgf_core.checkpoint import PARTIAL_WRITE

    run = tmp_path / "run"
    options = dict(data=[str(image_folder)], out=str(run), resolution=16, batch_size=8, steps=6, model=dict(TINY),
                   log_every=1, sample_every=100, checkpoint_every=2, progress=False, sample_seeds=4, device="cpu",
                   export=False, threads=1)
    script = tmp_path / "killed.py"
    script.write_text(KILLED_TRAINER)
    r = subprocess.run([sys.executable, str(script), json.dumps(options), "2", where, str(ROOT)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == -9, r.stderr[-2000:]
    leftovers = sorted(p.name for p in run.iterdir() if PARTIAL_WRITE.match(p.name))
    assert any(n.startswith(f".{STATE_FILE}.") for n in leftovers)  # the kill did interrupt a write ...
    if where == "in-safetensors-write":
        assert any(n.startswith(".tmp") for n in leftovers)  # ... inside safetensors' own
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in log if "kind" not in rec] == [1, 2, 3, 4]  # steps 3 and 4 will be redone

    records = []
    train(TrainOptions(**{**options, "resume": True}), on_step=records.append)
    assert records[0]["step"] == 3  # continued right after the saved step 2
    assert [p.name for p in run.iterdir() if PARTIAL_WRITE.match(p.name)] == []
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in log if "kind" not in rec] == [1, 2, 3, 4, 5, 6]  # each step once
    assert [rec["step"] for rec in log if rec.get("kind") == "start"] == [0, 2]
    train(TrainOptions(**{**options, "out": str(tmp_path / "full")}))
    a, b = load_file(str(tmp_path / "full" / STATE_FILE)), load_file(str(run / STATE_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    umask = os.umask(0)
    os.umask(umask)
    assert (run / STATE_FILE).stat().st_mode & 0o777 == 0o666 & ~umask


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
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r.get("kind", "step") for r in log] == ["start", "step", "step", "step"]  # only rank 0 logs


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


def test_resumes_a_state_written_by_the_previous_layout(image_folder, tmp_path):
    """tests/data/legacy-dcgan16-step2.safetensors was written by the single-function trainer (commit ea187d5) after
    2 steps of these options on one thread (fp32 and NCHW: that trainer used autocast on CUDA only, contiguous
    tensors); today's code continues it exactly with the same arithmetic (one thread, fp32, NCHW: the thread count
    and the memory layout change the order of float sums). The fixture was written on another CPU, whose kernels
    round some sums differently: the state must load bit for bit, and the continued weights match a run made here
    to float rounding (about 1e-9 after two steps), far below what a wrong step, learning rate or moment would do."""
    import shutil

    run = tmp_path / "legacy"
    run.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "legacy-dcgan16-step2.safetensors", run / STATE_FILE)
    same = dict(export=False, amp=False, channels_last=False, sample_every=100, checkpoint_every=100, threads=1)
    fixture = load_file(str(run / STATE_FILE))
    train(opts(image_folder, run, steps=2, resume=True, **same))  # nothing left to train: loads and saves back
    assert_same(fixture, load_file(str(run / STATE_FILE)), exact=True)
    train(opts(image_folder, run, steps=4, resume=True, **same))
    train(opts(image_folder, tmp_path / "full", steps=4, **same))
    a, b = load_file(str(tmp_path / "full" / STATE_FILE)), load_file(str(run / STATE_FILE))
    assert_same(a, b, exact=False)
    assert not torch.equal(b["G.main.0.weight"], fixture["G.main.0.weight"])  # it did train on


def assert_same(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7, msg=k)


def test_augmented_run_resumes_exactly_and_differs_from_plain(image_folder, tmp_path):
    aug = dict(augment="color,translation,cutout", export=False)
    train(opts(image_folder, tmp_path / "full", steps=4, **aug))
    train(opts(image_folder, tmp_path / "part", steps=2, **aug))
    train(opts(image_folder, tmp_path / "part", steps=4, resume=True, **aug))
    train(opts(image_folder, tmp_path / "plain", steps=4, export=False))
    a, b, c = (load_file(str(tmp_path / r / STATE_FILE)) for r in ("full", "part", "plain"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not torch.equal(a["D.features.0.weight"], c["D.features.0.weight"])
    with pytest.raises(ValueError, match="unknown augmentation"):
        train(opts(image_folder, tmp_path / "bad", augment="rotate"))


def test_eval_every_logs_face_rate_cpu_time_and_keeps_snapshots(image_folder, tmp_path):
    out = tmp_path / "run"
    train(opts(image_folder, out, steps=4, eval_every=16, eval_seeds=3, export=False))  # 8 images per step
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["kind"] == "start" and log[0]["family"] == "dcgan"
    evals = [r for r in log if r.get("kind") == "eval"]
    assert [r["images_seen"] for r in evals] == [16, 32]
    for r in evals:
        assert set(r["face_rate"]) == {"p>=0.9", "p>=0.99", "p>=0.999"} and r["n_seeds"] == 3
        assert all(0.0 <= v <= 1.0 for v in r["face_rate"].values())
        assert r["cpu_seconds"] >= 0 and r["eval_cpu_seconds"] >= 0
    assert evals[1]["cpu_seconds"] > evals[0]["cpu_seconds"]
    assert "c2st" not in evals[0] and "held-out" in evals[0]["c2st_skipped"]  # 24 files: none is held out
    cov = evals[0]["coverage"]  # by the shipped attribute classifier, beside the training faces'
    assert cov["n"] == 3 and cov["training_n"] == 24 and 0.0 <= cov["female_share"] <= 1.0
    assert cov["female_share_gap"] == pytest.approx(cov["female_share"] - cov["training_female_share"], abs=1e-4)
    assert evals[1]["coverage"]["training_female_share"] == cov["training_female_share"]  # computed once, same faces
    snap = load_model(out / evals[1]["snapshot"], with_discriminator=True)  # shippable, and continuable
    assert snap.card["images_seen"] == 32 and snap.discriminator is not None
    assert snap.generator(torch.randn(1, 8)).shape == (1, 3, 16, 16)


def test_snapshot_coverage_matches_the_attribute_profile_and_says_when_the_classifier_is_missing(image_folder, tmp_path, monkeypatch):
    from dgf_core.faces.edits import attribute_profile, load_classifier
    from dgf_core.training.loop import snapshot_coverage

    opts = SimpleNamespace(data=[image_folder])
    run = SimpleNamespace(data=load_image_set([image_folder], 16, "train"), attributes=None, training_profile=None,
                          opts=opts)
    imgs = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    cov = snapshot_coverage(run, imgs)["coverage"]
    clf = load_classifier(Path(__file__).resolve().parents[1] / "weights" / "attributes-utkface")
    want = attribute_profile(imgs, clf, "celeba-center-crop")
    assert cov["female_share"] == want["female_share"] and cov["age_mean"] == want["age_mean"] and cov["n"] == 5
    assert cov["training_female_share"] == attribute_profile(run.data.images, clf, "celeba-center-crop")["female_share"]
    # a run on an aligned set reads its faces in that set's framing (the 128-px runs read 3.7% women in the wrong one)
    monkeypatch.setattr("dgf_core.training.loop.aligned_set_card", lambda data: {"crop_recipe": "utkface-chip"})
    chip = snapshot_coverage(SimpleNamespace(data=run.data, attributes=None, training_profile=None, opts=opts), imgs)
    assert chip["coverage"]["age_mean"] == attribute_profile(imgs, clf, "utkface-chip")["age_mean"]
    assert chip["coverage"]["training_female_share"] == attribute_profile(run.data.images, clf, "utkface-chip")["female_share"]
    monkeypatch.setenv("DGF_WEIGHTS_DIR", str(tmp_path / "empty"))
    bare = SimpleNamespace(data=run.data, attributes=None, training_profile=None, opts=opts)
    assert "attribute classifier unavailable" in snapshot_coverage(bare, imgs)["coverage_error"]


def load_script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), Path(__file__).resolve().parents[1] / "scripts" / name)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_coverage_can_be_added_later_to_a_log_written_without_it(image_folder, tmp_path, capsys):
    from dgf_core.evaluation.curves import eval_series, read_run

    out = tmp_path / "run"
    train(opts(image_folder, out, steps=4, eval_every=16, eval_seeds=3, export=False))
    log = out / "log.jsonl"
    lines = [json.loads(l) for l in log.read_text().splitlines()]
    in_run = [r["coverage"] for r in lines if r.get("kind") == "eval"]
    for r in lines:
        r.pop("coverage", None)  # as the trainer wrote it before 2026-12-03
    first = next(r for r in lines if r.get("kind") == "eval")
    first["snapshot"] = "snapshots/kimg999999"  # a snapshot deleted since
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))
    script = load_script("rescore_snapshots.py")
    assert script.main([str(out)]) == 0
    assert "snapshot snapshots/kimg999999 is gone; skipped" in capsys.readouterr().err
    cols = eval_series(read_run(out))
    assert cols["female_share"][0] is None and cols["female_share"][1] is not None
    assert cols["training_female_share"][1] == in_run[1]["training_female_share"]  # the same training faces
    assert script.main([str(out)]) == 0 and len(log.read_text().splitlines()) == len(lines) + 1  # nothing added twice


def test_cpu_seconds_accumulate_across_resume(image_folder, tmp_path):
    from safetensors import safe_open

    def info(run):
        with safe_open(str(run / STATE_FILE), "pt") as f:
            return json.loads(f.metadata()["dgf_state"])["info"]

    out = tmp_path / "run"
    train(opts(image_folder, out, steps=2, export=False))
    first = info(out)["cpu_seconds"]
    train(opts(image_folder, out, steps=4, export=False, resume=True))
    assert first > 0 and info(out)["cpu_seconds"] > first
    starts = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines() if '"start"' in l]
    assert [s["step"] for s in starts] == [0, 2] and starts[1]["cpu_seconds"] == pytest.approx(first, abs=0.1)


def test_checkpoint_minutes_saves_by_time(image_folder, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "run"
    seen = []

    def state_step(rec):  # called after step N is logged, before its state is saved: the file holds step N-1
        if (out / STATE_FILE).exists():
            with safe_open(str(out / STATE_FILE), "pt") as f:
                seen.append(json.loads(f.metadata()["dgf_state"])["info"]["step"])

    train(opts(image_folder, out, steps=4, export=False, checkpoint_every=1000, checkpoint_minutes=1e-9), on_step=state_step)
    assert seen == [1, 2, 3]
    with pytest.raises(ValueError, match="checkpoint_minutes"):
        train(opts(image_folder, tmp_path / "x", checkpoint_minutes=0))


def test_init_from_a_shipped_generator(image_folder, tmp_path):
    from conftest import make_tiny_dcgan, make_tiny_stylegan2

    src = make_tiny_dcgan(tmp_path / "shipped", resolution=16)
    out = tmp_path / "run"
    train(opts(image_folder, out, steps=1, export=False, lr=0.0, model={}, init_from=str(src)))
    state, shipped = load_file(str(out / STATE_FILE)), load_file(str(src / "model.safetensors"))
    for k in ("main.0.weight", "main.1.weight"):
        assert torch.equal(state[f"G.{k}"], shipped[f"generator.{k}"].float()), k  # lr 0: still the shipped weights
    assert torch.equal(state["D.features.0.weight"], shipped["discriminator.features.0.weight"].float())
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["options"]["init_from"] == str(src) and log[0]["config"]["g_channels"] == 8
    with pytest.raises(ValueError, match="differs from this run"):
        train(opts(image_folder, tmp_path / "r2", steps=1, init_from=str(src)))  # TINY overrides: another architecture
    sg = make_tiny_stylegan2(tmp_path / "sg", resolution=16)
    with pytest.raises(ValueError, match="stylegan2"):
        train(opts(image_folder, tmp_path / "r3", steps=1, model={}, init_from=str(sg)))
    with pytest.raises(ValueError, match="only one"):
        train(opts(image_folder, out, steps=2, resume=True, model={}, init_from=str(src)))


def test_init_from_averages_with_the_full_ema_decay_from_the_first_step(image_folder, tmp_path):
    """The EMA warm-up forgets a random init; a run begun from trained weights has none, so its G_ema moves from
    them by (1 - decay) per step, in the first piece and after a resume, while a run from scratch warms up."""
    from conftest import make_tiny_dcgan

    src = make_tiny_dcgan(tmp_path / "shipped", resolution=16)
    shipped = load_file(str(src / "model.safetensors"))["generator.main.0.weight"].float()
    out = tmp_path / "run"
    train(opts(image_folder, out, steps=1, export=False, lr=0.01, ema_decay=0.9, model={}, init_from=str(src)))
    state = load_file(str(out / STATE_FILE))
    g, g_ema = state["G.main.0.weight"], state["G_ema.main.0.weight"]
    assert not torch.allclose(g, shipped)  # the step moved G
    torch.testing.assert_close(g_ema, shipped.lerp(g, 0.1))  # full decay 0.9 at step 0 (warm-up would give 0.1)
    train(opts(image_folder, out, steps=2, export=False, lr=0.01, ema_decay=0.9, resume=True, model={}))
    state2 = load_file(str(out / STATE_FILE))
    torch.testing.assert_close(state2["G_ema.main.0.weight"], g_ema.lerp(state2["G.main.0.weight"], 0.1))
    train(opts(image_folder, out, steps=3, export=False, lr=0.01, ema_decay=0.9, resume=True, model={}))  # a state
    state3 = load_file(str(out / STATE_FILE))  # written by a resumed piece (its options have no init_from)
    torch.testing.assert_close(state3["G_ema.main.0.weight"],
                               state2["G_ema.main.0.weight"].lerp(state3["G.main.0.weight"], 0.1))
    assert ema_decay_at(0, 0.9) == 0.1 and ema_decay_at(0, 0.9, warmup=False) == 0.9  # from scratch: warm-up


def test_init_from_a_stylegan2_folder_older_than_a_config_field_and_keeping_its_inference_noise(image_folder, tmp_path):
    """A folder written before StyleGAN2Config.inference_noise existed continues as "const"; one that ships
    "none" passes it on to the run and its exported model."""
    from conftest import make_tiny_stylegan2

    from dgf_core.checkpoint import write_json_atomic

    src = make_tiny_stylegan2(tmp_path / "sg", resolution=16)
    meta = read_config(src)
    del meta["config"]["inference_noise"]  # as written before the field existed
    write_json_atomic(meta, src / "config.json")
    sg_opts = dict(family="stylegan2", model={}, steps=1, batch_size=4, lr=0.0, eval_every=0)
    train(opts(image_folder, tmp_path / "old", init_from=str(src), **sg_opts))
    assert read_config(tmp_path / "old" / "model")["config"]["inference_noise"] == "const"
    meta["config"]["inference_noise"] = "none"
    write_json_atomic(meta, src / "config.json")
    train(opts(image_folder, tmp_path / "new", init_from=str(src), **sg_opts))
    assert read_config(tmp_path / "new" / "model")["config"]["inference_noise"] == "none"


def test_a_continued_model_card_counts_the_training_before_it(image_folder, tmp_path):
    from conftest import make_tiny_dcgan

    src = make_tiny_dcgan(tmp_path / "shipped", resolution=16, card={"images_seen": 1000, "cpu_seconds": 50.0})
    out = tmp_path / "run"
    train(opts(image_folder, out, steps=2, model={}, init_from=str(src)))
    card = read_config(out / "model")["card"]
    assert card["images_seen"] == 16 and card["images_seen_total"] == 1016
    assert card["cpu_seconds_total"] >= 50.0 + card["cpu_seconds"] - 0.1
    assert card["init_from"]["from"] == str(src) and card["init_from"]["images_seen"] == 1000
    # the source folder is replaced (say, by this run's own export) before the run resumes: the totals keep
    # counting from what the run started from, which the run state remembers
    make_tiny_dcgan(src, resolution=16, card={"images_seen": 99999})
    train(opts(image_folder, out, steps=3, model={}, resume=True))
    card = read_config(out / "model")["card"]
    assert card["images_seen"] == 24 and card["images_seen_total"] == 1024


def test_a_state_without_lineage_takes_it_from_the_source_folder(image_folder, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from conftest import make_tiny_dcgan

    src = make_tiny_dcgan(tmp_path / "shipped", resolution=16, card={"images_seen": 1000})
    out = tmp_path / "run"
    train(opts(image_folder, out, steps=2, model={}, init_from=str(src), export=False))
    with safe_open(str(out / STATE_FILE), "pt") as f:  # as the trainer wrote it before lineage was kept
        meta = f.metadata()
    state = json.loads(meta["dgf_state"])
    del state["info"]["lineage"]
    save_file(load_file(str(out / STATE_FILE)), str(out / STATE_FILE), metadata={**meta, "dgf_state": json.dumps(state)})
    train(opts(image_folder, out, steps=3, model={}, resume=True))
    assert "check that the folder was not replaced" in capsys.readouterr().err
    assert read_config(out / "model")["card"]["images_seen_total"] == 1024


def test_eval_runs_the_two_sample_test_against_held_out_faces(tmp_path):
    from conftest import make_image_folder

    from dgf_core.data import is_heldout

    paths = make_image_folder(tmp_path / "faces", 400)
    assert sum(map(is_heldout, paths)) >= 10
    out = tmp_path / "run"
    heldout = sum(map(is_heldout, paths))
    train(opts(tmp_path / "faces", out, steps=1, eval_every=8, eval_seeds=12, export=False))
    ev = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines() if '"eval"' in l][0]
    # by default as many samples as `evaluate --n 1000` tests, against every held-out face: not just the face-rate seeds
    assert ev["c2st"]["n_per_class"] == heldout and 0.0 <= ev["c2st"]["accuracy"] <= 1.0 and ev["c2st"]["stderr"] >= 0
    assert ev["n_seeds"] == 12 and ev["coverage"]["n"] == 12
    train(opts(tmp_path / "faces", tmp_path / "few", steps=1, eval_every=8, eval_seeds=12, eval_c2st_samples=11,
               export=False))
    ev = [json.loads(l) for l in (tmp_path / "few" / "log.jsonl").read_text().splitlines() if '"eval"' in l][0]
    assert ev["c2st"]["n_per_class"] == 11 and ev["coverage"]["n"] == 12
    train(opts(tmp_path / "faces", tmp_path / "off", steps=1, eval_every=8, eval_seeds=12, eval_c2st_samples=0,
               export=False))
    ev = [json.loads(l) for l in (tmp_path / "off" / "log.jsonl").read_text().splitlines() if '"eval"' in l][0]
    assert "c2st" not in ev and "c2st_skipped" not in ev and set(ev["face_rate"]) == {"p>=0.9", "p>=0.99", "p>=0.999"}
    with pytest.raises(ValueError, match="eval_c2st_samples"):
        train(opts(tmp_path / "faces", tmp_path / "bad", eval_c2st_samples=-1))
    # a log written with a smaller test (as before 2026-12-04) gets the full-size one added later, by the same code
    from dgf_core.evaluation.curves import eval_series, read_run

    script = load_script("rescore_snapshots.py")
    assert script.main([str(tmp_path / "few"), "--c2st-samples", "30"]) == 0
    cols = eval_series(read_run(tmp_path / "few"))
    assert cols["c2st_n"] == [heldout] and 0.0 <= cols["c2st"][0] <= 1.0
    lines = (tmp_path / "few" / "log.jsonl").read_text().splitlines()
    assert script.main([str(tmp_path / "few"), "--c2st-samples", "30"]) == 0  # nothing added twice
    assert (tmp_path / "few" / "log.jsonl").read_text().splitlines() == lines


def test_a_run_started_from_a_shipped_model_resumes_without_repeating_its_architecture(image_folder, tmp_path):
    from conftest import make_tiny_dcgan

    src = make_tiny_dcgan(tmp_path / "shipped", resolution=16)
    out = tmp_path / "run"
    train(opts(image_folder, out, steps=1, export=False, model={}, init_from=str(src)))
    train(opts(image_folder, out, steps=2, export=False, model={}, resume=True))  # no --model, no --init-from
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"] == 2


class _OnceDifferentiable(torch.autograd.Function):
    """Identity whose backward cannot itself be differentiated: torch.compile's limit (no double backward)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return grad


def test_compiled_stylegan2_runs_its_r1_penalty_on_the_eager_discriminator(image_folder, tmp_path, monkeypatch):
    """torch.compile has no double backward, which R1 needs: with --compile, the R1 step must bypass the compiled D.
    A stand-in for torch.compile with the same limit keeps the test fast."""
    class StandIn(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x, *args, **kwargs):
            return self.module(_OnceDifferentiable.apply(x), *args, **kwargs)

    monkeypatch.setattr(torch, "compile", StandIn)
    sg = dict(family="stylegan2", model={"channel_base": 64, "channel_max": 8, "d_channel_base": 64, "d_channel_max": 8,
                                         "z_dim": 8, "w_dim": 8, "mapping_layers": 2},
              steps=2, batch_size=4, r1_gamma=0.1, r1_every=1, eval_every=0, export=False, sample_every=10)
    records = []
    train(opts(image_folder, tmp_path / "run", compile=True, **sg), on_step=records.append)
    assert [r["step"] for r in records] == [1, 2]
    with pytest.raises(RuntimeError, match="once_differentiable"):  # the stand-in does refuse double backward
        x = torch.ones(2, requires_grad=True)
        (g,) = torch.autograd.grad(_OnceDifferentiable.apply(x).square().sum(), x, create_graph=True)
        g.sum().backward()


def test_truncate_log_drops_records_past_the_step_and_a_cut_line(tmp_path):
    log = tmp_path / "log.jsonl"
    recs = [{"kind": "start", "step": 0}, {"step": 1}, {"step": 2}, {"kind": "evaluation", "step": 2, "face_rate": 0.5},
            {"step": 3}, {"kind": "evaluation", "step": 3}]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"step": 4, "d_lo')  # killed mid-line
    assert truncate_log(log, 2) == 3
    assert [json.loads(line) for line in log.read_text().splitlines()] == recs[:4]
    assert truncate_log(log, 2) == 0 and truncate_log(tmp_path / "missing.jsonl", 2) == 0
