"""What the classifier two-sample test keys on: C2ST accuracy of a generator's samples against held-out real faces,
as `evaluate` measures it, then with both sets low-passed (2x and 4x: area down, bilinear up) and, for a
StyleGAN2, with each inference-noise mode (the model's fixed 'const' buffers, fresh 'random' noise per sample,
'none'). A drop under low-pass says the tell is in fine detail; a drop without the fixed noise says every sample
shared one noise pattern.

    python scripts/probe_c2st.py --model weights/stylegan2-celeba64 --model weights/dcgan-celeba64 \
        --real ../shared/data/celeba/img_align_celeba --real ../shared/data/celeba/img_align_celeba_89x109 \
        --json docs/results/c2st-probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dgf_core.checkpoint import load_model  # noqa: E402
from dgf_core.data import load_image_set  # noqa: E402
from dgf_core.training.loop import sample_seeds  # noqa: E402
from dgf_core.training.two_sample import c2st  # noqa: E402


def low_pass(u8: torch.Tensor, factor: int) -> torch.Tensor:
    """uint8 images blurred by area-downsampling `factor`x and bilinear upsampling back (same size)."""
    x = F.interpolate(u8.float(), scale_factor=1 / factor, mode="area")
    x = F.interpolate(x, size=u8.shape[-2:], mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def samples(generator: torch.nn.Module, z_dim: int, n: int, noise: str | None = None) -> torch.Tensor:
    """uint8 samples of seeds 0..n-1 (`training.loop.sample_seeds`); `noise` (StyleGAN2 only) overrides the model's
    inference noise, 'random' drawn from a fixed torch.Generator so the probe itself repeats."""
    if noise is None:
        return sample_seeds(generator, z_dim, n)
    g = torch.Generator().manual_seed(0)
    return sample_seeds(lambda z: generator.synthesis(generator.broadcast(generator.mapped(z)), noise, g), z_dim, n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="model folder or name (repeatable)")
    ap.add_argument("--real", action="append", required=True, help="real face folder(s); their held-out split is used")
    ap.add_argument("--split", default="heldout", help="which split of --real (default: heldout, as evaluate)")
    ap.add_argument("--n", type=int, default=1000, help="samples per model (seeds 0..n-1)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    real = load_image_set(args.real, 64, args.split, cache_dir=args.cache_dir).images
    results = {}
    for name in args.model:
        m = load_model(name)
        g = m.generator.float().eval()
        if real.shape[-1] != m.config.resolution:
            real = load_image_set(args.real, m.config.resolution, args.split, cache_dir=args.cache_dir).images
        ref = real[: args.n]
        t0 = time.perf_counter()
        s = samples(g, m.config.z_dim, args.n)
        r = {"model": m.name, "weights_sha256": m.weights_sha256, "n_per_class": min(len(s), len(ref))}
        r["full"] = c2st(s, ref)["accuracy"]
        r["low_pass_2x"] = c2st(low_pass(s, 2), low_pass(ref, 2))["accuracy"]
        r["low_pass_4x"] = c2st(low_pass(s, 4), low_pass(ref, 4))["accuracy"]
        if hasattr(g, "synthesis"):
            r["inference_noise"] = g.cfg.inference_noise
            r["noise_modes"] = {mode: c2st(samples(g, m.config.z_dim, args.n, mode), ref)["accuracy"] for mode in ("const", "random", "none")}
        r["seconds"] = round(time.perf_counter() - t0, 1)
        results[m.name] = r
        print(json.dumps(r), flush=True)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": "python " + " ".join(sys.argv),
              "real": args.real, "split": args.split, "torch": torch.__version__, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
