"""Issue 26's sync target on the shipped generators: for several faces, a synthetic recording of syllable-like bursts
drives the mouth (`audio.mouth_curve` through the mouth_open direction); the CelebA classifier's Mouth_Slightly_Open
of each frame is correlated with the loudness envelope (`evaluation.voice_sync`). Writes a JSON of every face's
correlation and lag.

    python scripts/measure_voice_sync.py --models stylegan2-celeba64 dcgan-celeba64 --faces 8 --json docs/results/voice-sync.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dgf_core.checkpoint import load_model, write_json_atomic  # noqa: E402
from dgf_core.evaluation.voice_sync import measure_voice_sync  # noqa: E402
from dgf_core.generation.audio import SAMPLE_RATE, Recording  # noqa: E402
from dgf_core.latent import seed_to_z  # noqa: E402


def bursts(seconds: float, seed: int) -> Recording:
    """Syllable-like bursts (a 140 Hz voice with harmonics and noise, 120-260 ms, eased) with 80-300 ms pauses."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    env, t = np.zeros(n), 0.1
    while t < seconds - 0.3:
        dur = rng.uniform(0.12, 0.26)
        a, b = int(t * SAMPLE_RATE), int((t + dur) * SAMPLE_RATE)
        env[a:b] = np.sin(np.linspace(0, np.pi, b - a)) ** 0.5 * rng.uniform(0.6, 1.0)
        t += dur + rng.uniform(0.08, 0.3)
    time = np.arange(n) / SAMPLE_RATE
    voice = 0.6 * np.sin(2 * np.pi * 140 * time) + 0.3 * np.sin(2 * np.pi * 280 * time) + 0.1 * rng.standard_normal(n)
    return Recording((np.clip(0.5 * env * voice, -1, 1) * 32767).astype(np.int16))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["stylegan2-celeba64", "dcgan-celeba64"])
    p.add_argument("--faces", type=int, default=8, help="seeds 0..N-1 (truncation 0.7)")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--fps", type=int, default=24)
    p.add_argument("--json", required=True)
    a = p.parse_args()
    out = {"command": "python scripts/measure_voice_sync.py " + " ".join(sys.argv[1:]), "models": {}}
    for name in a.models:
        model = load_model(name)
        g, rows = model.generator, []
        for seed in range(a.faces):
            z = seed_to_z(seed, model.config.z_dim)[None]
            with torch.no_grad():
                latent, space = (g.mapped(z, 0.7), "w") if hasattr(g, "mapped") else (0.7 * z, "z")
            rows.append({"seed": seed, **measure_voice_sync(model, latent, space, bursts(a.seconds, seed), a.fps)})
            print(name, rows[-1], flush=True)
        corr = [r["correlation"] for r in rows]
        lag = [abs(r["best_lag_ms"]) for r in rows]
        out["models"][name] = {"faces": rows, "correlation_mean": round(float(np.mean(corr)), 3),
                               "correlation_min": round(float(np.min(corr)), 3), "abs_lag_ms_max": max(lag),
                               "target": "correlation >= 0.5, lag <= 80 ms",
                               "met_by_every_face": all(c >= 0.5 for c in corr) and max(lag) <= 80}
    write_json_atomic(out, a.json)
    print(json.dumps({k: {kk: v[kk] for kk in ("correlation_mean", "correlation_min", "abs_lag_ms_max",
                                                "met_by_every_face")} for k, v in out["models"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
