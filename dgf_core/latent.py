"""Seeds, latents, truncation and latent paths.

A seed names a sample: `seed_to_z(seed, dim)` draws z ~ N(0, I) from a CPU `torch.Generator` seeded with
`seed`, so the same seed gives the same latent on any machine (bitwise: the CPU generator is portable),
whatever device the model later runs on.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence

import torch

SEED_MAX = 2**32 - 1
SPACES = ("z", "w", "w+")  # latent spaces: z (any generator), w and w+ (one w per layer; StyleGAN2)


class SeedError(ValueError):
    """A seed that is not an integer in 0..2**32-1, or a seed list that does not parse."""


def check_seed(seed: object) -> int:
    """Return `seed` as an int, or raise SeedError with a message a user can act on."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        if isinstance(seed, float) and seed.is_integer():
            seed = int(seed)  # 42.0 from a JSON number or a UI slider is still seed 42
        else:
            raise SeedError(f"a seed must be an integer in 0..{SEED_MAX}, got {seed!r} ({type(seed).__name__})")
    seed = int(seed)
    if not 0 <= seed <= SEED_MAX:
        raise SeedError(f"a seed must be an integer in 0..{SEED_MAX}, got {seed}")
    return seed


def _seed_from_text(text: str) -> int:
    if not text.isdigit():
        raise SeedError(f"a seed must be an integer in 0..{SEED_MAX}, got {text!r}")
    return check_seed(int(text))


def parse_seeds(text: str, max_count: int | None = None) -> list[int]:
    """Parse '0-63', '1,7,42' or '0-3,10' into a list of seeds (ranges inclusive, order kept)."""
    if not isinstance(text, str) or not text.strip():
        raise SeedError("no seeds given: use a list such as '1,7,42' or a range such as '0-63'")
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            raise SeedError(f"empty item in seed list {text!r}")
        if "-" in part[1:]:
            lo_s, hi_s = part.split("-", 1)
            lo, hi = _seed_from_text(lo_s), _seed_from_text(hi_s)
            if hi < lo:
                raise SeedError(f"seed range {part!r} runs backwards")
            count = hi - lo + 1
            if max_count is not None and len(seeds) + count > max_count:
                raise SeedError(f"too many seeds: at most {max_count}")
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(_seed_from_text(part))
        if max_count is not None and len(seeds) > max_count:
            raise SeedError(f"too many seeds: at most {max_count}")
    return seeds


def seed_to_z(seed: int, dim: int) -> torch.Tensor:
    """seed -> z of shape (dim,), float32 on the CPU, drawn from N(0, I)."""
    g = torch.Generator().manual_seed(check_seed(seed))
    return torch.randn(dim, generator=g)


def seeds_to_z(seeds: Sequence[int], dim: int) -> torch.Tensor:
    """seeds -> (len(seeds), dim); row i equals seed_to_z(seeds[i], dim)."""
    if len(seeds) == 0:
        return torch.empty(0, dim)
    return torch.stack([seed_to_z(s, dim) for s in seeds])


def check_truncation(psi: float) -> float:
    if isinstance(psi, bool) or not isinstance(psi, numbers.Real) or not 0.0 <= float(psi) <= 1.0:
        raise ValueError(f"truncation psi must be a number in [0, 1], got {psi!r}")
    return float(psi)


def truncate(latent: torch.Tensor, psi: float, center: torch.Tensor | None = None) -> torch.Tensor:
    """The truncation trick: move `latent` towards `center` (0 for z, the mean w for StyleGAN) by 1 - psi."""
    psi = check_truncation(psi)
    if psi == 1.0:
        return latent
    if center is None:
        return latent * psi
    return center + psi * (latent - center)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the last dim; keeps the norm typical of Gaussian latents."""
    a_n = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b_n = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    dot = (a_n * b_n).sum(-1, keepdim=True).clamp(-1 + eps, 1 - eps)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-4:  # nearly parallel: lerp is exact enough
        return lerp(a, b, t)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


EASINGS: dict[str, Callable[[float], float]] = {
    "linear": lambda t: t,
    "ease-in-out": lambda t: 0.5 - 0.5 * math.cos(math.pi * t),  # cosine: zero velocity at keyframes
    "smoothstep": lambda t: t * t * (3 - 2 * t),
}
INTERPOLATIONS = {"lerp": lerp, "slerp": slerp}


def keyframe_path(
    keys: torch.Tensor, frames_per_transition: int, *, loop: bool = False, method: str = "slerp", easing: str = "linear"
) -> torch.Tensor:
    """Latents walking through keyframes.

    keys: (K, D) with K >= 2 (K >= 1 if loop). Returns (T, D) where T = transitions * frames_per_transition
    (+1 for the final keyframe when not looping, so the clip ends on it); transitions = K if loop else K - 1.
    """
    if keys.ndim != 2:
        raise ValueError(f"keyframes must be (K, D), got {tuple(keys.shape)}")
    if method not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {method!r}; choose from {sorted(INTERPOLATIONS)}")
    if easing not in EASINGS:
        raise ValueError(f"unknown easing {easing!r}; choose from {sorted(EASINGS)}")
    if frames_per_transition < 1:
        raise ValueError("frames per transition must be at least 1")
    k = keys.shape[0]
    if k < 2 and not (loop and k == 1):
        raise ValueError("a path needs at least two keyframes")
    interp, ease = INTERPOLATIONS[method], EASINGS[easing]
    pairs = [(keys[i], keys[(i + 1) % k]) for i in range(k if loop else k - 1)]
    out = [interp(a, b, ease(f / frames_per_transition)) for a, b in pairs for f in range(frames_per_transition)]
    if not loop:
        out.append(keys[-1])
    return torch.stack(out)


# ---- rendering a latent ---------------------------------------------------------------------------------

def synthesize(generator: torch.nn.Module, latent: torch.Tensor, space: str) -> torch.Tensor:
    """latent(s) in `space` -> images (N, 3, R, R) in about [-1, 1]; for z, w: (N, D); for w+: (N, n_ws, w_dim).
    Deterministic (a StyleGAN2's `inference_noise`). z works for any generator with forward(z) (the DCGAN renders
    through its folded inference network); w / w+ need a StyleGAN2 (`broadcast`, `synthesis`)."""
    if space == "z":
        g = generator.inference_module() if hasattr(generator, "inference_module") else generator
        return g(latent)
    if space in ("w", "w+"):
        ws = latent if space == "w+" else generator.broadcast(latent)
        return generator.synthesis(ws)
    raise ValueError(f"space must be one of {SPACES}, got {space!r}")
