"""External StyleGAN2 weights: generators saved in the rosinality/stylegan2-pytorch layout.

The public PyTorch ports of NVIDIA's FFHQ / CelebA-HQ StyleGAN2 generators (256, 512, 1024) are
rosinality `g_ema` state dicts, usually in a `{"g_ema": ..., "latent_avg": ...}` file written by its
`convert_weight.py`. Our `dgf_core.models.stylegan.Generator` uses the same parameterization (equalized
learning rate with run-time scaling, mapping lr multiplier, [1,3,3,1] FIR up-sampling, the same order of
per-layer styles), so importing is renaming and reshaping tensors; nothing is rescaled. Every key is
accounted for: a file with unknown keys, missing tensors or wrong shapes is refused with the key names.

Safety: `.safetensors` files are read as tensors; `.pt`/`.pth` only through `torch.load(weights_only=True)`
(plain tensors and containers, no code). NVIDIA `.pkl` network pickles are never opened: unpickling
runs code from the file. See `PICKLE_MESSAGE` for the conversion route.

    python -m dgf_core import-rosinality stylegan2-ffhq-256.pt --out weights/stylegan2-ffhq256
"""
from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .checkpoint import file_sha256, save_model
from .models.stylegan import Generator, StyleGAN2Config, make_kernel

PICKLE_MESSAGE = (
    "{path}: NVIDIA StyleGAN2 network pickles (.pkl) are refused: unpickling runs code stored in the file. "
    "Convert it once, in a throw-away environment and only if you trust its source, to a rosinality "
    "state dict: TensorFlow pickles (NVlabs/stylegan2) with rosinality/stylegan2-pytorch's "
    "`python convert_weight.py --repo <path to NVlabs/stylegan2> FILE.pkl`, PyTorch pickles "
    "(stylegan2-ada-pytorch) with a converter to the rosinality layout; then save the g_ema tensors "
    "(`safetensors.torch.save_file(ckpt['g_ema'], 'g_ema.safetensors')`, or keep the .pt that holds only "
    "{{'g_ema', 'latent_avg'}}) and run `python -m dgf_core import-rosinality FILE --out weights/NAME`."
)
PICKLE_SUFFIXES = (".pkl", ".pickle")
TORCH_SUFFIXES = (".pt", ".pth")


class OfficialWeightsError(ValueError):
    """A weights file that is refused (pickle), unreadable, or not a rosinality StyleGAN2 generator."""


@dataclass
class ImportedGenerator:
    config: StyleGAN2Config
    generator: Generator  # eval mode, float32, mean_w set
    notes: list[str] = field(default_factory=list)  # what was inferred or filled in


# ---- reading ---------------------------------------------------------------------------------------------

def read_rosinality_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(g_ema state dict, latent_avg or None) from .safetensors / .pt / .pth; refuses pickles of code."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise OfficialWeightsError(PICKLE_MESSAGE.format(path=p))
    if suffix not in TORCH_SUFFIXES + (".safetensors",):
        raise OfficialWeightsError(f"{p}: expected a .safetensors, .pt or .pth file, got {suffix or 'no suffix'!r}")
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    if suffix == ".safetensors":
        try:
            obj: Any = load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise OfficialWeightsError(f"{p} is not a readable safetensors file: {e}") from None
        if any(k.startswith("g_ema.") for k in obj):
            obj = {"g_ema": {k[len("g_ema."):]: v for k, v in obj.items() if k.startswith("g_ema.")},
                   "latent_avg": obj.get("latent_avg")}
    else:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as e:
            raise OfficialWeightsError(
                f"{p} cannot be read as plain tensors (torch.load weights_only=True refused it: {str(e).splitlines()[0]}). "
                "A full rosinality training checkpoint also stores its argparse options; save only the generator: "
                "`torch.save({'g_ema': ckpt['g_ema'], 'latent_avg': ckpt.get('latent_avg')}, 'g_ema.pt')` "
                "in an environment where you trust the file."
            ) from None
    latent_avg = None
    if isinstance(obj, dict) and "g_ema" in obj:
        latent_avg = obj.get("latent_avg")
        obj = obj["g_ema"]
    elif isinstance(obj, dict) and "g" in obj and "style.1.weight" not in obj:
        raise OfficialWeightsError(f"{p} has no 'g_ema' entry (keys: {sorted(obj)[:8]}); the EMA generator is needed")
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise OfficialWeightsError(f"{p} does not hold a state dict of tensors")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise OfficialWeightsError(f"{p}: latent_avg is not a tensor")
    return dict(obj), latent_avg


# ---- layout ----------------------------------------------------------------------------------------------

def _count(sd: dict[str, torch.Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd for m in [rx.fullmatch(k)] if m})


def infer_config(sd: dict[str, torch.Tensor], mapping_lr_mul: float = 0.01) -> StyleGAN2Config:
    """Our config for a rosinality g_ema state dict. `mapping_lr_mul` is not stored in the weights
    (rosinality's `lr_mlp`, 0.01 in every public checkpoint) and must be given if it differs."""
    try:
        n_mlp = _count(sd, r"style\.(\d+)\.weight")
        w_dim, z_dim = sd["style.1.weight"].shape
        n_rgb = _count(sd, r"to_rgbs\.(\d+)\.conv\.weight") + 1
        log2 = n_rgb + 1
        channels = {4: sd["input.input"].shape[1]}
        for i in range(log2 - 2):
            channels[2 ** (i + 3)] = sd[f"convs.{2 * i}.conv.weight"].shape[1]
        img_channels = sd["to_rgb1.conv.weight"].shape[1]
    except KeyError as e:
        raise OfficialWeightsError(f"not a rosinality StyleGAN2 generator state dict: no {e.args[0]!r}") from None
    cmax = max(channels.values())
    below = [r for r in sorted(channels) if channels[r] < cmax]
    cbase = channels[below[0]] * below[0] if below else cmax * 2**log2
    if any(min(cbase // r, cmax) != c for r, c in channels.items()):
        raise OfficialWeightsError(f"channel layout {channels} is not min(base // res, max) for any base")
    return StyleGAN2Config(resolution=2**log2, z_dim=int(z_dim), w_dim=int(w_dim), mapping_layers=n_mlp,
                           mapping_lr_mul=mapping_lr_mul, channel_base=cbase, channel_max=cmax, img_channels=int(img_channels))


def rosinality_key_map(cfg: StyleGAN2Config) -> dict[str, str]:
    """rosinality g_ema key -> our Generator key, for every parameter and noise buffer."""
    m: dict[str, str] = {"input.input": "const"}
    for i in range(cfg.mapping_layers):  # style.0 is PixelNorm (no tensors)
        for t in ("weight", "bias"):
            m[f"style.{i + 1}.{t}"] = f"mapping.layers.{i}.{t}"
    for j in range(cfg.n_conv_layers):
        src, dst = ("conv1" if j == 0 else f"convs.{j - 1}"), f"layers.{j}"
        m[f"{src}.conv.weight"] = f"{dst}.conv.weight"
        m[f"{src}.conv.modulation.weight"] = f"{dst}.conv.affine.weight"
        m[f"{src}.conv.modulation.bias"] = f"{dst}.conv.affine.bias"
        m[f"{src}.noise.weight"] = f"{dst}.noise_strength"
        m[f"{src}.activate.bias"] = f"{dst}.bias"
        m[f"noises.noise_{j}"] = f"{dst}.noise_const"
    for k in range(cfg.log2_res - 1):
        src, dst = ("to_rgb1" if k == 0 else f"to_rgbs.{k - 1}"), f"to_rgbs.{k}"
        m[f"{src}.conv.weight"] = f"{dst}.conv.weight"
        m[f"{src}.conv.modulation.weight"] = f"{dst}.conv.affine.weight"
        m[f"{src}.conv.modulation.bias"] = f"{dst}.conv.affine.bias"
        m[f"{src}.bias"] = f"{dst}.bias"
    return m


def _fixed_buffers(cfg: StyleGAN2Config) -> dict[str, torch.Tensor]:
    """rosinality's non-learned FIR kernels: checked against ours, not copied."""
    up = make_kernel() * 4
    fixed = {f"convs.{j}.conv.blur.kernel": up for j in range(0, cfg.n_conv_layers - 1, 2)}
    fixed.update({f"to_rgbs.{k}.upsample.kernel": up for k in range(cfg.log2_res - 2)})
    return fixed


def convert_rosinality_state_dict(sd: dict[str, torch.Tensor], cfg: StyleGAN2Config) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename and reshape a rosinality g_ema state dict to our Generator's keys (mean_w excluded).

    Raises OfficialWeightsError listing unknown keys, missing tensors, shape mismatches or FIR kernels
    other than [1, 3, 3, 1]. Missing noise buffers (very old checkpoints) are allowed and reported.
    """
    ours = Generator(cfg).state_dict()
    key_map = rosinality_key_map(cfg)
    fixed = _fixed_buffers(cfg)
    unknown = sorted(set(sd) - set(key_map) - set(fixed))
    if unknown:
        raise OfficialWeightsError(f"unexpected keys for a {cfg.resolution}x{cfg.resolution} rosinality generator: {unknown[:6]}")
    for k, ref in fixed.items():
        if k in sd and (sd[k].shape != ref.shape or not torch.allclose(sd[k].float(), ref, atol=1e-6)):
            raise OfficialWeightsError(f"{k}: only the [1, 3, 3, 1] blur kernel is supported")
    out, notes = {}, []
    missing = []
    for src, dst in key_map.items():
        if src not in sd:
            if src.startswith("noises."):
                notes.append(f"{src} missing: our seeded noise buffer kept")
                continue
            missing.append(src)
            continue
        shape = tuple(ours[dst].shape)
        if dst.endswith("conv.weight"):
            expected = (1, *shape)  # rosinality keeps a leading batch dim on modulated weights
        elif re.fullmatch(r"to_rgbs\.\d+\.bias", dst):
            expected = (1, shape[0], 1, 1)
        else:
            expected = shape
        if tuple(sd[src].shape) != expected:
            raise OfficialWeightsError(f"{src}: shape {tuple(sd[src].shape)}, expected {expected} (for {dst})")
        out[dst] = sd[src].float().reshape(shape)
    if missing:
        raise OfficialWeightsError(f"missing tensors: {missing[:6]}" + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))
    return out, notes


def from_rosinality(
    sd: dict[str, torch.Tensor], latent_avg: torch.Tensor | None = None, *, mapping_lr_mul: float = 0.01,
    mean_w_samples: int = 20_000, seed: int = 0,
) -> ImportedGenerator:
    """Build our Generator from a rosinality g_ema state dict. The truncation centre `mean_w` is the
    checkpoint's `latent_avg` when present, else the mean of mapping(z) over `mean_w_samples` seeded draws."""
    cfg = infer_config(sd, mapping_lr_mul)
    tensors, notes = convert_rosinality_state_dict(sd, cfg)
    g = Generator(cfg)
    result = g.load_state_dict(tensors, strict=False)
    absent_noise = [k for k in result.missing_keys if k.endswith("noise_const")]
    leftover = sorted(set(result.missing_keys) - {"mean_w"} - set(absent_noise))
    if leftover or result.unexpected_keys:
        raise OfficialWeightsError(f"internal key mapping error: missing {leftover[:5]}, unexpected {result.unexpected_keys[:5]}")
    g = g.eval().requires_grad_(False)
    noise_rng = torch.Generator().manual_seed(seed)
    buffers = dict(g.named_buffers())
    for k in absent_noise:  # very old checkpoints: fixed noise drawn from the seed, so images stay reproducible
        buffers[k].copy_(torch.randn(buffers[k].shape, generator=noise_rng))
    if latent_avg is not None:
        if latent_avg.numel() != cfg.w_dim:
            raise OfficialWeightsError(f"latent_avg has {latent_avg.numel()} values, expected w_dim = {cfg.w_dim}")
        g.mean_w.copy_(latent_avg.float().reshape(-1))
        notes.append("mean_w: latent_avg from the checkpoint")
    else:
        g.estimate_mean_w(mean_w_samples, torch.Generator().manual_seed(seed))
        notes.append(f"mean_w: mean of mapping(z) over {mean_w_samples} z (seed {seed}); the file has no latent_avg")
    return ImportedGenerator(cfg, g, notes)


def load_rosinality(path: str | os.PathLike, **kw: Any) -> ImportedGenerator:
    """Read a rosinality generator file (.safetensors/.pt/.pth) and build our Generator from it."""
    sd, latent_avg = read_rosinality_file(path)
    return from_rosinality(sd, latent_avg, **kw)


def import_rosinality(
    path: str | os.PathLike, out: str | os.PathLike, *, resolution: int | None = None, dtype: torch.dtype | None = torch.float16,
    card: dict[str, Any] | None = None, **kw: Any,
) -> Path:
    """Convert a rosinality generator file into a model folder that `checkpoint.load_model` rebuilds."""
    imported = load_rosinality(path, **kw)
    if resolution is not None and imported.config.resolution != resolution:
        raise OfficialWeightsError(f"{path} is a {imported.config.resolution}x{imported.config.resolution} generator, not {resolution}")
    p = Path(path)
    meta = {
        "description": f"StyleGAN2 generator imported from a rosinality/stylegan2-pytorch checkpoint ({p.name})",
        "source_file": p.name,
        "source_sha256": file_sha256(p),
        "import_notes": imported.notes,
        "license": "that of the original weights (NVIDIA's FFHQ models: Nvidia Source Code License-NC, non-commercial)",
        **(card or {}),
    }
    return save_model(out, "stylegan2", imported.config, imported.generator, None, meta, dtype=dtype)
