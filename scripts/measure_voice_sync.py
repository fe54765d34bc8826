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
from dgf_core.generation.audio import syllable_bursts  # noqa: E402
from dgf_core.latent import seed_to_z  # noqa: E402


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
            rows.append({"seed": seed, **measure_voice_sync(model, latent, space, syllable_bursts(a.seconds, seed), a.fps)})
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
