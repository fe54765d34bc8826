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
