"""Does the mouth follow the voice? The measured mouth opening of a voice memory's frames against the recording's
loudness envelope (issue 26's sync target: correlation >= 0.5 at a lag of at most 80 ms).

The frames are the generator's own (render "model", no walk: only the mouth moves), driven by `audio.mouth_curve`
through the model's `mouth_open` direction from where the face's pauses put the mouth (`memory.talking_start`);
the CelebA attribute classifier (`weights/attributes-celeba`, label Mouth_Slightly_Open) measures each frame's mouth
opening, as its logit (the probability saturates near 0 and 1 for
faces whose mouth is clearly closed or open all along). `sync` correlates the two per frame and finds the lag
(in frames, then ms) at which they agree best; a positive lag means the mouth comes after the sound.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data import to_float
from ..generation.audio import Recording, mouth_curve

CLASSIFIER = "attributes-celeba"
LABEL = "Mouth_Slightly_Open"
MAX_LAG_FRAMES = 6


def sync(opening: np.ndarray, envelope: np.ndarray, fps: int, max_lag: int = MAX_LAG_FRAMES) -> dict[str, float]:
    """Correlation of the measured opening with the envelope at lag 0, and the lag (frames and ms; positive: the
    mouth after the sound) with the highest correlation within +-max_lag frames."""
    assert opening.shape == envelope.shape and opening.ndim == 1, (opening.shape, envelope.shape)

    def corr(lag: int) -> float:
        a, b = (opening[lag:], envelope[: len(envelope) - lag]) if lag >= 0 else (opening[:lag], envelope[-lag:])
        return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0

    lags = range(-max_lag, max_lag + 1)
    best = max(lags, key=corr)
    return {"correlation": round(corr(0), 4), "best_lag_frames": best, "best_lag_ms": round(1000 * best / fps, 1),
            "correlation_at_best_lag": round(corr(best), 4)}


@torch.no_grad()
def measure_voice_sync(model, latent: torch.Tensor, space: str, rec: Recording, fps: int = 24,
                       classifier=None) -> dict[str, Any]:
    """One face (`latent` in `space`) speaking `rec`: the frames' measured mouth opening against the envelope."""
    from ..checkpoint import resolve_model_path
    from ..faces.alignment import model_recipe
    from ..faces.edits import load_classifier, load_directions
    from ..faces.memory import MemorySpec, memory_frames, motion_directions, talking_start, voice_spec

    spec = voice_spec(MemorySpec(fps=fps, radius=0.0, mark=False, render="model"), rec)
    directions = load_directions(model)
    _, extents = motion_directions(model, spec, directions, mouth=True)
    envelope = mouth_curve(rec, fps, spec.frames)
    start = talking_start(model, latent, space, directions, extents)
    frames = memory_frames(model, latent, space, spec, directions=directions, extents=extents, mouth=start + envelope)
    clf = classifier or load_classifier(resolve_model_path(CLASSIFIER))
    images = to_float(torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous())
    p = clf.predict(images, model_recipe(model.card))[LABEL].double().clamp(1e-6, 1 - 1e-6)
    opening = torch.logit(p).numpy()
    return {"frames": spec.frames, "fps": fps, "seconds": round(rec.seconds, 2), "mouth_start": start,
            "probability_range": [round(float(p.min()), 3), round(float(p.max()), 3)],
            **sync(opening, envelope, fps)}
