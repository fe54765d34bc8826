"""StyleGAN2: tiny random models on the CPU (16x16, 4-16 channels); nothing downloaded, nothing read from ../shared."""
from __future__ import annotations

import dataclasses
import math
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import make_image_folder
from safetensors.torch import save_file

from dgf_core.checkpoint import load_model, save_model
from dgf_core.models import get_family
from dgf_core.models.stylegan import (
    Discriminator,
    Generator,
    ModulatedConv2d,
    StyleGAN2Config,
    upfirdn2d,
)
from dgf_core.official import (
    OfficialWeightsError,
    convert_rosinality_state_dict,
    import_rosinality,
    infer_config,
    load_rosinality,
    read_rosinality_file,
)

TINY = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16, d_channel_base=128, d_channel_max=16)


def tiny_cfg(resolution: int = 16, **kw) -> StyleGAN2Config:
    return StyleGAN2Config(resolution=resolution, **{**TINY, **kw})


def tiny_g(seed: int = 0, **kw) -> Generator:
    torch.manual_seed(seed)
    g = Generator(tiny_cfg(**kw))
    with torch.no_grad():  # non-zero noise strengths and biases, so every input path matters
        for name, p in g.named_parameters():
            if name.endswith(("noise_strength", "bias")) and "affine" not in name and "mapping" not in name:
                p.normal_(0.0, 0.3)
    g.estimate_mean_w(2_000, torch.Generator().manual_seed(1))
    return g.eval()


def z_of(seeds, dim=16) -> torch.Tensor:
    return torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(s)) for s in seeds])


# ---- architecture ---------------------------------------------------------------------------------------

def test_shapes_and_layer_layout():
    cfg = tiny_cfg()
    g, d = Generator(cfg), Discriminator(cfg)
    assert cfg.n_ws == 6 and len(g.layers) == 5 and len(g.to_rgbs) == 3
    assert [cfg.g_channels(r) for r in (4, 8, 16)] == [16, 16, 8]
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 3, 16, 16) and torch.isfinite(x).all()
    assert d(x).shape == (3,)
    assert d(x[:1]).shape == (1,)  # minibatch-stddev group shrinks to fit the batch
    with pytest.raises(ValueError, match="power of two"):
        StyleGAN2Config(resolution=12)
    with pytest.raises(AssertionError):
        g.synthesis(torch.randn(2, 5, 16))


def test_compact_config_size():
    """The default 64x64 config is the compact ~4.8M-parameter generator the issue describes."""
    cfg = StyleGAN2Config()
    n = sum(p.numel() for p in Generator(cfg).parameters())
    assert 4.5e6 < n < 5.0e6
    assert cfg.n_ws == 10


def test_upfirdn2d_upsample_of_constant_is_constant_inside():
    x = torch.ones(1, 2, 6, 6)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None] * k[:, None]
    y = upfirdn2d(x, k / k.sum() * 4, up=2, pad=(2, 1))
    assert y.shape == (1, 2, 12, 12)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.ones(1, 2, 8, 8))


@pytest.mark.parametrize("up,demod,k", [(False, True, 3), (True, True, 3), (False, False, 1)])
def test_fast_modconv_matches_grouped_reference(up, demod, k):
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, k, 8, demodulate=demod, up=up)
    with torch.no_grad():
        conv.affine.bias.normal_(1.0, 0.5)
    x, w = torch.randn(3, 6, 7, 7, requires_grad=True), torch.randn(3, 8)
    fast, ref = conv(x, w, "fast"), conv(x, w, "ref")
    assert fast.shape == (3, 5, 14 if up else 7, 14 if up else 7)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    (gf,) = torch.autograd.grad(fast.square().sum(), x)
    (gr,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(gf, gr, atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # the memoized inference path and its invalidation on in-place updates
        torch.testing.assert_close(conv(x, w, "fast"), ref, atol=1e-5, rtol=1e-5)
        conv.weight.mul_(2.0)
        torch.testing.assert_close(conv(x, w, "fast"), conv(x, w, "ref"), atol=1e-5, rtol=1e-5)


def test_fast_synthesis_matches_reference_with_per_layer_styles():
    g = tiny_g()
    ws = torch.randn(4, g.n_ws, 16)  # a different w per layer exercises the layer -> w indexing of both paths
    with torch.no_grad():
        torch.testing.assert_close(g.synthesis(ws, impl="fast"), g.synthesis(ws, impl="ref"), atol=1e-5, rtol=1e-5)


# G(seed 42)[0, :, 7, 7:9] of tiny_g(seed=0), recorded with torch 2.14 on the CPU; a change here means the
# generator computes a different function (or the init changed): check the diff before updating.
EXPECTED_SLICE = [0.39058, 0.11745, -1.82917, -1.70262, 0.83828, 0.53063]


def test_output_slice_matches_stored_values():
    g = tiny_g(seed=0)
    with torch.no_grad():
        x = g(z_of([42]))
    torch.testing.assert_close(x[0, :, 7, 7:9].flatten(), torch.tensor(EXPECTED_SLICE), atol=1e-4, rtol=1e-4)


# ---- determinism, truncation, mixing ---------------------------------------------------------------------

def test_seed_names_an_image():
    g = tiny_g()
    with torch.no_grad():
        batch = g(z_of([3, 5, 7]))
        alone = g(z_of([5]))
        again = g(z_of([3, 5, 7]))
    assert torch.equal(batch, again)
    torch.testing.assert_close(alone[0], batch[1], atol=1e-5, rtol=1e-5)  # no dependence on the batch
    assert not torch.allclose(batch[0], batch[2])


def test_training_noise_comes_from_the_given_generator():
    g = tiny_g().train()
    z = z_of([1, 2])
    with torch.no_grad():
        a = g(z, noise_generator=torch.Generator().manual_seed(0))
        b = g(z, noise_generator=torch.Generator().manual_seed(0))
        c = g(z, noise_generator=torch.Generator().manual_seed(1))
        ev = g.eval()(z)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)  # fresh noise / mixing per draw
    assert not torch.allclose(a, ev)  # eval uses the fixed noise buffers


def test_inference_noise_none_drops_the_fixed_pattern_everywhere_a_seed_is_rendered():
    """inference_noise="none": eval forward, truncated, mix and latent.synthesize all render without noise,
    deterministically; "const" (the default, older folders) keeps the buffers; anything else is refused."""
    from dgf_core.latent import synthesize

    const, none = tiny_g(seed=0), tiny_g(seed=0, inference_noise="none")
    none.load_state_dict(const.state_dict())
    z = z_of([4, 9])
    with torch.no_grad():
        ws = const.broadcast(const.mapped(z))
        assert torch.equal(const(z), const.synthesis(ws, "const"))
        expect = const.synthesis(ws, "none")
        assert not torch.allclose(expect, const(z))  # the tiny model's noise strengths are non-zero
        for out in (none(z), none.truncated(z, 1.0), none.mix(z, z, 2), synthesize(none, ws, "w+"), none(z)):
            torch.testing.assert_close(out, expect, atol=1e-6, rtol=1e-6)
    assert StyleGAN2Config().inference_noise == "const"
    with pytest.raises(ValueError, match="inference_noise"):
        tiny_cfg(inference_noise="random")


def test_truncation_in_w():
    g = tiny_g()
    z = z_of([1, 2, 3])
    with torch.no_grad():
        mean_img = g.synthesis(g.broadcast(g.mean_w[None]))
        t0 = g.truncated(z, 0.0)
        t1 = g.truncated(z, 1.0)
        plain = g(z)
        w, w_half = g.mapped(z), g.mapped(z, 0.5)
    for i in range(3):
        torch.testing.assert_close(t0[i], mean_img[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(t1, plain)
    torch.testing.assert_close(w_half - g.mean_w, 0.5 * (w - g.mean_w))
    assert g.mean_w.abs().sum() > 0


def test_style_mixing_endpoints_and_middle():
    g = tiny_g()
    zc, zf = z_of([10, 11]), z_of([20, 21])
    with torch.no_grad():
        coarse, fine = g.truncated(zc, 0.7), g.truncated(zf, 0.7)
        torch.testing.assert_close(g.mix(zc, zf, 0, 0.7), fine)
        torch.testing.assert_close(g.mix(zc, zf, g.n_ws, 0.7), coarse)
        mid = g.mix(zc, zf, 3, 0.7)
        mid_other_coarse = g.mix(z_of([12, 13]), zf, 3, 0.7)
    assert not torch.allclose(mid, coarse) and not torch.allclose(mid, fine)
    assert not torch.allclose(mid, mid_other_coarse)
    for bad in (-1, g.n_ws + 1, 2.0):
        with pytest.raises(ValueError, match="crossover"):
            g.mix(zc, zf, bad)


# ---- checkpoints, pipeline, CLI --------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    g = tiny_g()
    cfg = g.cfg
    save_model(tmp_path / "m", "stylegan2", cfg, g, Discriminator(cfg), {"description": "tiny"}, dtype=None)
    m = load_model(tmp_path / "m", with_discriminator=True)
    assert m.family.name == "stylegan2" and m.config == cfg and isinstance(m.discriminator, Discriminator)
    z = z_of([4, 5])
    with torch.no_grad():
        assert torch.equal(m.generator.truncated(z, 0.6), g.truncated(z, 0.6))
    assert torch.equal(m.generator.mean_w, g.mean_w)
    assert get_family("stylegan2").make_config(dataclasses.asdict(cfg)) == cfg


@pytest.fixture
def tiny_model_dir(tmp_path):
    g = tiny_g()
    return save_model(tmp_path / "tiny-stylegan2", "stylegan2", g.cfg, g, None, {"description": "tiny"}, dtype=None)


def test_pipeline_truncation_and_style_mix(tiny_model_dir):
    from dgf_core.generation.pipeline import FacePipeline

    pipe = FacePipeline.from_pretrained(tiny_model_dir, device="cpu")
    g = pipe.model.generator
    assert pipe.n_styles == 6
    imgs = pipe.generate([1, 2], truncation=0.5)
    with torch.no_grad():
        direct = ((g.truncated(z_of([1, 2]), 0.5) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    assert imgs.dtype == torch.uint8 and imgs.shape == (2, 3, 16, 16)
    assert (imgs.int() - direct.int()).abs().max() <= 1
    assert torch.equal(pipe.style_mix([1, 2], [9], 0), pipe.generate([9, 9]))
    assert torch.equal(pipe.style_mix([1, 2], [9], 6), pipe.generate([1, 2]))
    with pytest.raises(ValueError):
        pipe.style_mix([1, 2], [9, 8, 7], 2)


def test_cli_generate_with_style_mixing(tiny_model_dir, tmp_path, capsys):
    from PIL import Image

    from dgf_core.cli import main

    out = tmp_path / "out"
    rc = main(["generate", "--model", str(tiny_model_dir), "--seeds", "1,2", "--out", str(out),
               "--mix-seed", "9", "--mix-crossover", "2", "--truncation", "0.7", "--device", "cpu"])
    assert rc == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["seed000001-mix000009-x2.png", "seed000002-mix000009-x2.png"]
    assert '"crossover": 2' in Image.open(out / files[0]).text["dgf_recipe"]
    rc = main(["generate", "--model", str(tiny_model_dir), "--seeds", "1", "--out", str(out), "--mix-seed", "9",
               "--mix-crossover", "7", "--device", "cpu"])
    assert rc == 2 and "--mix-crossover" in capsys.readouterr().err


def test_dcgan_has_no_style_mixing(tiny_weights_dir):
    from dgf_core.generation.pipeline import FacePipeline

    pipe = FacePipeline.from_pretrained(tiny_weights_dir / "tiny-dcgan", device="cpu")
    assert pipe.n_styles is None
    with pytest.raises(ValueError, match="no style mixing"):
        pipe.style_mix([1], [2], 1)


# ---- training --------------------------------------------------------------------------------------------

def _opts(data, out, steps, resume=False):
    from dgf_core.training.loop import TrainOptions

    return TrainOptions(data=[str(data)], out=str(out), family="stylegan2", model=dict(TINY), resolution=16, batch_size=4,
                        steps=steps, lr=2e-3, betas=(0.0, 0.99), r1_gamma=0.1, r1_every=2, checkpoint_every=1,
                        sample_seeds=4, progress=False, resume=resume)


def test_train_steps_export_and_exact_resume(tmp_path):
    from dgf_core.checkpoint import load_training_state
    from dgf_core.training.loop import train

    make_image_folder(tmp_path / "faces", 12)
    straight = train(_opts(tmp_path / "faces", tmp_path / "a", 3))
    m = load_model(straight)
    assert m.family.name == "stylegan2" and m.generator.mean_w.abs().sum() > 0  # estimated at export
    with torch.no_grad():
        assert torch.isfinite(m.generator.truncated(z_of([0, 1]), 0.7)).all()

    train(_opts(tmp_path / "faces", tmp_path / "b", 2))
    train(_opts(tmp_path / "faces", tmp_path / "b", 3, resume=True))
    cfg = tiny_cfg()
    fam = get_family("stylegan2")
    mods = [{"G": fam.generator(cfg), "D": fam.discriminator(cfg), "G_ema": fam.generator(cfg)} for _ in range(2)]
    for run, mod in zip("ab", mods):
        load_training_state(tmp_path / run / "state.safetensors", mod, {})
    for name in ("G", "D"):  # noise, style mixing and R1 all replay from (seed, step): resume is exact
        for (k, a), (_, b) in zip(mods[0][name].state_dict().items(), mods[1][name].state_dict().items()):
            assert torch.equal(a, b), f"{name}.{k} differs after resume"


# ---- rosinality/stylegan2-pytorch weights ----------------------------------------------------------------
# An independent re-implementation of rosinality's Generator.forward (model.py, op/upfirdn2d.py native path,
# fused grouped modulated conv), written from its source against the raw state dict.

def _r_kernel(k=(1.0, 3.0, 3.0, 1.0)):
    k = torch.tensor(k)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def _r_upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    _, channel, in_h, in_w = x.shape
    px0, px1, py0, py1 = pad[0], pad[1], pad[0], pad[1]
    kh, kw = kernel.shape
    out = x.reshape(-1, in_h, in_w, 1).view(-1, in_h, 1, in_w, 1, 1)
    out = F.pad(out, [0, 0, 0, up - 1, 0, 0, 0, up - 1]).view(-1, in_h * up, in_w * up, 1)
    out = F.pad(out, [0, 0, max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    out = out.permute(0, 3, 1, 2).reshape([-1, 1, in_h * up + py0 + py1, in_w * up + px0 + px1])
    out = F.conv2d(out, torch.flip(kernel, [0, 1]).view(1, 1, kh, kw))
    out = out.reshape(-1, 1, in_h * up + py0 + py1 - kh + 1, in_w * up + px0 + px1 - kw + 1).permute(0, 2, 3, 1)
    out = out[:, ::down, ::down, :]
    out_h = (in_h * up + py0 + py1 - kh) // down + 1
    out_w = (in_w * up + px0 + px1 - kw) // down + 1
    return out.reshape(-1, channel, out_h, out_w)


def _r_linear(x, sd, p, lr_mul=1.0, act=False):
    w = sd[p + ".weight"] * (1 / math.sqrt(sd[p + ".weight"].shape[1])) * lr_mul
    if act:
        return F.leaky_relu(F.linear(x, w) + sd[p + ".bias"] * lr_mul, 0.2) * math.sqrt(2)
    return F.linear(x, w, sd[p + ".bias"] * lr_mul)


def _r_modconv(x, style, sd, p, demodulate=True, upsample=False):
    weight = sd[p + ".weight"]  # (1, out, in, k, k)
    _, out_ch, in_ch, k, _ = weight.shape
    batch, _, height, width = x.shape
    style = _r_linear(style, sd, p + ".modulation").view(batch, 1, in_ch, 1, 1)
    weight = (1 / math.sqrt(in_ch * k * k)) * weight * style
    if demodulate:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, out_ch, 1, 1, 1)
    weight = weight.view(batch * out_ch, in_ch, k, k)
    x = x.view(1, batch * in_ch, height, width)
    if upsample:
        weight = weight.view(batch, out_ch, in_ch, k, k).transpose(1, 2).reshape(batch * in_ch, out_ch, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=batch)
        out = out.view(batch, out_ch, *out.shape[2:])
        return _r_upfirdn2d(out, _r_kernel() * 4, pad=(1, 1))
    out = F.conv2d(x, weight, padding=k // 2, groups=batch)
    return out.view(batch, out_ch, *out.shape[2:])


def _r_styled_conv(x, style, sd, p, noise, upsample=False):
    out = _r_modconv(x, style, sd, p + ".conv", upsample=upsample)
    out = out + sd[p + ".noise.weight"] * noise
    return F.leaky_relu(out + sd[p + ".activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)


def _r_to_rgb(x, style, sd, p, skip=None):
    out = _r_modconv(x, style, sd, p + ".conv", demodulate=False) + sd[p + ".bias"]
    if skip is not None:
        out = out + _r_upfirdn2d(skip, _r_kernel() * 4, up=2, pad=(2, 1))
    return out


def rosinality_forward(sd, zs, n_mlp, log_size, truncation=1.0, truncation_latent=None, inject_index=None):
    """rosinality Generator.forward(styles=zs, randomize_noise=False, truncation=..., inject_index=...)."""
    styles = []
    for z in zs:
        x = z * torch.rsqrt(torch.mean(z**2, dim=1, keepdim=True) + 1e-8)
        for i in range(n_mlp):
            x = _r_linear(x, sd, f"style.{i + 1}", lr_mul=0.01, act=True)
        styles.append(x)
    if truncation < 1:
        styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
    n_latent = log_size * 2 - 2
    if len(styles) < 2:
        latent = styles[0].unsqueeze(1).repeat(1, n_latent, 1)
    else:
        latent = torch.cat([styles[0].unsqueeze(1).repeat(1, inject_index, 1),
                            styles[1].unsqueeze(1).repeat(1, n_latent - inject_index, 1)], 1)
    noise = [sd[f"noises.noise_{i}"] for i in range((log_size - 2) * 2 + 1)]
    out = sd["input.input"].repeat(latent.shape[0], 1, 1, 1)
    out = _r_styled_conv(out, latent[:, 0], sd, "conv1", noise[0])
    skip = _r_to_rgb(out, latent[:, 1], sd, "to_rgb1")
    i = 1
    for j in range(log_size - 2):
        out = _r_styled_conv(out, latent[:, i], sd, f"convs.{2 * j}", noise[2 * j + 1], upsample=True)
        out = _r_styled_conv(out, latent[:, i + 1], sd, f"convs.{2 * j + 1}", noise[2 * j + 2])
        skip = _r_to_rgb(out, latent[:, i + 2], sd, f"to_rgbs.{j}", skip)
        i += 2
    return skip


def make_rosinality_state_dict(size=16, style_dim=16, n_mlp=2, channels=None, seed=0):
    """Random tensors in the key layout of rosinality's Generator(size, style_dim, n_mlp).state_dict()."""
    channels = channels or {4: 16, 8: 16, 16: 8}
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    sd = {}
    for i in range(n_mlp):
        sd[f"style.{i + 1}.weight"] = rn(style_dim, style_dim) / 0.01
        sd[f"style.{i + 1}.bias"] = rn(style_dim)

    def modconv(p, cin, cout, k):
        sd[p + ".weight"] = rn(1, cout, cin, k, k)
        sd[p + ".modulation.weight"] = rn(cin, style_dim)
        sd[p + ".modulation.bias"] = 1 + 0.2 * rn(cin)

    def styled(p, cin, cout, up=False):
        modconv(p + ".conv", cin, cout, 3)
        if up:
            sd[p + ".conv.blur.kernel"] = _r_kernel() * 4
        sd[p + ".noise.weight"] = 0.3 * rn(1)
        sd[p + ".activate.bias"] = 0.2 * rn(cout)

    def rgb(p, cin, up):
        modconv(p + ".conv", cin, 3, 1)
        sd[p + ".bias"] = 0.2 * rn(1, 3, 1, 1)
        if up:
            sd[p + ".upsample.kernel"] = _r_kernel() * 4

    log_size = int(math.log2(size))
    sd["input.input"] = rn(1, channels[4], 4, 4)
    styled("conv1", channels[4], channels[4])
    rgb("to_rgb1", channels[4], False)
    for layer_idx in range((log_size - 2) * 2 + 1):
        res = (layer_idx + 5) // 2
        sd[f"noises.noise_{layer_idx}"] = rn(1, 1, 2**res, 2**res)
    cin = channels[4]
    for i in range(3, log_size + 1):
        cout = channels[2**i]
        styled(f"convs.{2 * (i - 3)}", cin, cout, up=True)
        styled(f"convs.{2 * (i - 3) + 1}", cout, cout)
        rgb(f"to_rgbs.{i - 3}", cout, True)
        cin = cout
    return sd


def test_rosinality_import_matches_reference_forward(tmp_path):
    sd = make_rosinality_state_dict()
    latent_avg = torch.randn(1, 16)
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, tmp_path / "g.pt")
    imported = load_rosinality(tmp_path / "g.pt")
    g, cfg = imported.generator, imported.config
    assert (cfg.resolution, cfg.z_dim, cfg.w_dim, cfg.mapping_layers) == (16, 16, 16, 2)
    assert [cfg.g_channels(r) for r in (4, 8, 16)] == [16, 16, 8]
    torch.testing.assert_close(g.mean_w, latent_avg[0])
    z1, z2 = z_of([1, 2, 3]), z_of([7, 8, 9])
    with torch.no_grad():
        torch.testing.assert_close(g.truncated(z1, 1.0), rosinality_forward(sd, [z1], 2, 4), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(g.truncated(z1, 0.6), rosinality_forward(sd, [z1], 2, 4, 0.6, latent_avg), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(g.mix(z1, z2, 3), rosinality_forward(sd, [z1, z2], 2, 4, inject_index=3), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(g.synthesis(g.broadcast(g.mapped(z1)), impl="ref"), rosinality_forward(sd, [z1], 2, 4),
                                   atol=1e-4, rtol=1e-4)


def test_rosinality_import_to_model_folder(tmp_path):
    sd = make_rosinality_state_dict(seed=3)
    save_file(sd, str(tmp_path / "g.safetensors"))  # a bare g_ema state dict, no latent_avg
    folder = import_rosinality(tmp_path / "g.safetensors", tmp_path / "imported", resolution=16, dtype=None)
    m = load_model(folder)
    assert m.family.name == "stylegan2" and "mean_w" in " ".join(m.card["import_notes"])
    z = z_of([5, 6])
    with torch.no_grad():
        torch.testing.assert_close(m.generator(z), rosinality_forward(sd, [z], 2, 4), atol=1e-4, rtol=1e-4)
    with pytest.raises(OfficialWeightsError, match="not 64"):
        import_rosinality(tmp_path / "g.safetensors", tmp_path / "x", resolution=64)


def test_rosinality_key_mapping_is_complete_and_strict():
    sd = make_rosinality_state_dict()
    cfg = infer_config(sd)
    tensors, notes = convert_rosinality_state_dict(sd, cfg)
    ours = Generator(cfg).state_dict()
    assert set(tensors) == set(ours) - {"mean_w"} and notes == []
    assert all(tensors[k].shape == ours[k].shape for k in tensors)
    with pytest.raises(OfficialWeightsError, match="missing tensors.*convs.1.conv.modulation.weight"):
        convert_rosinality_state_dict({k: v for k, v in sd.items() if k != "convs.1.conv.modulation.weight"}, cfg)
    with pytest.raises(OfficialWeightsError, match="unexpected keys.*convs.9.conv.weight"):
        convert_rosinality_state_dict({**sd, "convs.9.conv.weight": torch.zeros(1)}, cfg)
    with pytest.raises(OfficialWeightsError, match="to_rgb1.bias"):
        convert_rosinality_state_dict({**sd, "to_rgb1.bias": torch.zeros(3)}, cfg)
    with pytest.raises(OfficialWeightsError, match="blur kernel"):
        convert_rosinality_state_dict({**sd, "convs.0.conv.blur.kernel": torch.ones(4, 4)}, cfg)
    no_noise = {k: v for k, v in sd.items() if not k.startswith("noises.")}
    _, notes = convert_rosinality_state_dict(no_noise, cfg)
    assert len(notes) == 5


def test_pickles_are_refused_without_running_them(tmp_path):
    (tmp_path / "network-snapshot.pkl").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(OfficialWeightsError, match="convert_weight.py"):
        read_rosinality_file(tmp_path / "network-snapshot.pkl")

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"g_ema": make_rosinality_state_dict(), "extra": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(OfficialWeightsError, match="weights_only"):
        read_rosinality_file(tmp_path / "evil.pt")
    assert not marker.exists()
    from dgf_core.cli import main

    assert main(["import-rosinality", str(tmp_path / "network-snapshot.pkl"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
