"""Every script under scripts/ still imports against today's package layout (a refactor must not break them)."""
import importlib.util
from pathlib import Path

import pytest

SCRIPT_DIR = Path(__file__).resolve().parent.parent / "scripts"
SCRIPTS = sorted(SCRIPT_DIR.glob("*.py"))
# One-off probes whose answers are recorded in docs/ were removed (their code stays in the git history):
REMOVED_PROBES = ("probe_c2st.py", "probe_directions.py", "probe_ema.py", "compare_face_detectors.py")
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


def test_removed_probes_stay_removed_and_docs_do_not_send_readers_to_them():
    """A probe goes once docs/ records its answer; no page or module may still tell a reader to run it."""
    root = SCRIPT_DIR.parent
    assert not [p for p in REMOVED_PROBES if (SCRIPT_DIR / p).exists()]
    texts = {p: p.read_text(encoding="utf-8") for p in [root / "README.md", *(root / "docs").glob("*.md"),
                                                          *(root / "dgf_core").rglob("*.py")]}
    stale = [f"{p.name}: {probe}" for p, t in texts.items() for probe in REMOVED_PROBES
             if f"python scripts/{probe}" in t]
    assert not stale, stale


def test_measure_memory_reads_tuning_mixes():
    """--mix NAME=k:v,... takes each value as its option's type, lr (None by default: per latent space) as a float."""
    spec = importlib.util.spec_from_file_location("script_measure_memory", SCRIPT_DIR / "measure_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    name, kw = module.parse_mix("fast=lr:0.01,locality_every:2,locality_weight:0.1,steps:250")
    assert name == "fast" and kw == {"lr": 0.01, "locality_every": 2, "locality_weight": 0.1, "steps": 250}
    assert isinstance(kw["steps"], int) and isinstance(kw["lr"], float)
    assert module.parse_mix("default=") == ("default", {})


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
    script = SCRIPT_DIR / "train_cpu.sh"
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


def test_kill_trial_watches_the_temporary_files_a_state_write_makes(tmp_path):
    """The trial's watcher must know the names a state write goes through (so a kill "during a write" is one), and
    each of them must be one a resumed run removes."""
    from dgf_core.checkpoint import PARTIAL_WRITE
    from dgf_core.images import atomic_path

    spec = importlib.util.spec_from_file_location("script_kill_trial", SCRIPT_DIR / "kill_trial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ours = atomic_path(tmp_path / "state.safetensors")[1].name
    assert module.in_write(ours) == "ours" and module.in_write(".tmpAb3xQZ") == "safetensors"
    assert all(PARTIAL_WRITE.match(n) for n in (ours, ".tmpAb3xQZ"))
    log_tmp = atomic_path(tmp_path / "log.jsonl")[1].name
    assert [module.in_write(n) for n in ("state.safetensors", log_tmp, ".tmp", "log.jsonl")] == [None] * 4
