"""Every script under scripts/ still imports against today's package layout (a refactor must not break them)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "scripts").glob("*.py"))
OPTIONAL = {"facenet_pytorch"}  # make_mtcnn_reference.py compares against it; not a dependency of the project


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_script_imports(path):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)  # top level only: main() runs under __name__ == "__main__"
    except ModuleNotFoundError as e:
        if e.name in OPTIONAL:
            pytest.skip(f"needs the optional package {e.name}")
        raise
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"


def test_there_are_scripts():
    assert len(SCRIPTS) >= 10


def test_measure_memory_reads_tuning_mixes():
    """--mix NAME=k:v,... takes each value as its option's type, lr (None by default: per latent space) as a float."""
    spec = importlib.util.spec_from_file_location("script_measure_memory", SCRIPTS[0].parent / "measure_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name, kw = module.parse_mix("fast=lr:0.01,locality_every:2,locality_weight:0.1,steps:250")
    assert name == "fast" and kw == {"lr": 0.01, "locality_every": 2, "locality_weight": 0.1, "steps": 250}
    assert isinstance(kw["steps"], int) and isinstance(kw["lr"], float)
    assert module.parse_mix("default=") == ("default", {})


def test_probe_c2st_low_pass_and_noise_modes(tmp_path):
    """The probe's low-pass keeps size and flat images, removes a one-pixel checkerboard; a tiny StyleGAN2's
    samples differ by noise mode only where the mode says (const vs none), and repeat for 'random'."""
    import torch
    from conftest import make_tiny_stylegan2

    from dgf_core.checkpoint import load_model

    spec = importlib.util.spec_from_file_location("script_probe_c2st", SCRIPTS[0].parent / "probe_c2st.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flat = torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(module.low_pass(flat, 2), flat)
    checker = ((torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 255).to(torch.uint8).expand(1, 3, 16, 16)
    assert module.low_pass(checker, 2).float().std() < 0.2 * checker.float().std()
    m = load_model(make_tiny_stylegan2(tmp_path / "sg", resolution=16))
    g = m.generator.float().eval()
    with torch.no_grad():
        for layer in g.layers:
            layer.noise_strength.fill_(2.0)
    const, none = module.samples(g, 16, 4, "const"), module.samples(g, 16, 4, "none")
    assert torch.equal(module.samples(g, 16, 4), const)  # the model's inference noise: const by default
    assert not torch.equal(const, none)
    assert torch.equal(module.samples(g, 16, 4, "random"), module.samples(g, 16, 4, "random"))


def test_probe_ema_averages_snapshots_and_reads_a_state(tmp_path):
    """The probe's checkpoint average is the mean of the folders' generator weights; from_state takes exactly the
    state's `G.` or `G_ema.` weights into the run's architecture."""
    import torch
    from conftest import make_tiny_stylegan2

    from dgf_core.checkpoint import load_model, save_training_state

    spec = importlib.util.spec_from_file_location("script_probe_ema", SCRIPTS[0].parent / "probe_ema.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a, b = make_tiny_stylegan2(tmp_path / "a", seed=1), make_tiny_stylegan2(tmp_path / "b", seed=2)
    ga, gb = load_model(a).generator.float(), load_model(b).generator.float()
    w = "mapping.layers.0.weight"
    wa, wb = ga.state_dict()[w].clone(), gb.state_dict()[w].clone()
    avg = module.averaged([ga, gb])
    torch.testing.assert_close(avg.state_dict()[w], (wa + wb) / 2)
    assert not torch.allclose(wa, wb)
    assert torch.equal(gb.state_dict()[w], wb)  # the inputs are unchanged
    save_training_state(tmp_path / "state.safetensors", {"G": ga, "G_ema": gb}, {}, {"step": 7})
    nets, info = module.from_state(gb, tmp_path / "state.safetensors")
    torch.testing.assert_close(nets["G_ema"].state_dict()[w], wb)
    torch.testing.assert_close(nets["G"].state_dict()[w], wa)
    assert info["step"] == 7


def _train_cpu(tmp_path, run, env_extra, family="stylegan2"):
    """Runs scripts/train_cpu.sh with a stand-in python that records the trainer's arguments instead of training."""
    import os
    import subprocess
    import sys
    import time

    fake = tmp_path / "fake-python"
    record = tmp_path / "train-args.txt"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = -c ]; then exec {sys.executable} "$@"; fi\n'
                    f'printf "%s\\n" "$@" > {record}.tmp && mv {record}.tmp {record}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "HOME": str(tmp_path), "INIT_FROM": "none", **env_extra}
    script = SCRIPTS[0].parent / "train_cpu.sh"
    out = subprocess.run(["bash", str(script), family, str(run)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 30
    while not record.exists() and time.monotonic() < deadline:  # the trainer starts in the background
        time.sleep(0.05)
    return record.read_text().split("\n")


def test_train_cpu_resume_keeps_the_runs_own_settings(tmp_path):
    """A resumed run is started with the settings in its log's last start record unless the environment names
    others; a new run gets only what the environment gives."""
    import json

    def value(args, flag):
        return args[args.index(flag) + 1] if flag in args else None

    run = tmp_path / "runs" / "fork"
    args = _train_cpu(tmp_path, run, {"LR": "5e-4", "R1_GAMMA": "0.025"})
    assert value(args, "--lr") == "5e-4" and value(args, "--r1-gamma") == "0.025" and "--resume" not in args
    assert "--ema-decay" not in args and value(args, "--batch-size") == "32"

    run.mkdir(parents=True, exist_ok=True)
    (run / "state.safetensors").write_bytes(b"")  # a saved state: the next call resumes
    opts = {"lr": 0.0005, "batch_size": 64, "ema_decay": 0.9995, "r1_gamma": 0.025, "augment": "color"}
    (run / "log.jsonl").write_text(json.dumps({"kind": "start", "options": opts}) + "\n")
    (tmp_path / "train-args.txt").unlink()
    args = _train_cpu(tmp_path, run, {"LR": "1e-3"})
    assert "--resume" in args and value(args, "--r1-gamma") == "0.025" and value(args, "--batch-size") == "64"
    assert value(args, "--ema-decay") == "0.9995" and value(args, "--augment") == "color"
    assert value(args, "--lr") == "1e-3"  # given: it wins over the saved one


def test_train_cpu_128_trains_a_stylegan2_on_the_aligned_set_from_a_given_model(tmp_path):
    run = tmp_path / "runs" / "sg128"
    args = _train_cpu(tmp_path, run, {"INIT_FROM": "weights/stylegan2-celeba64"}, family="stylegan2-128")
    assert args[:3] == ["-m", "dgf_core", "train"] and args[3] == "stylegan2"
    assert args[args.index("--data") + 1] == str(tmp_path / "dgf-runs" / "faces128") and args.count("--data") == 1
    assert args[args.index("--resolution") + 1] == "128"
    assert args[args.index("--init-from") + 1] == "weights/stylegan2-celeba64" and "--model" not in args
