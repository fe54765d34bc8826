"""Where a talking mouth starts: the stretch of its `mouth_open` line that a voice drives on this face.

A voice memory moves the face along the model's `mouth_open` direction by the loudness (`audio.mouth_curve`: 0 in a
pause, 1 on a loud syllable) times the direction's motion amount. Starting at the face itself suits a face whose mouth
is closed; a face whose mouth is already open (a laughing photo) cannot open much further, and in a pause it must
close: its stretch starts below the face. `mouth_start` measures the mouth opening (the CelebA classifier's
Mouth_Slightly_Open logit, the measure of `evaluation.voice_sync`) at GRID, from one motion amount closed to one open,
and picks the stretch one motion amount long whose end opens the mouth most over its start: the face itself (start 0)
unless another stretch opens it by MIN_GAIN logits more.
"""
from __future__ import annotations

import numpy as np
import torch

GRID = tuple(float(x) for x in np.linspace(-1.0, 1.0, 9))  # points of the line, in motion amounts of mouth_open
MIN_GAIN = 1.0  # logits: a start other than the face itself must open the mouth by this much more
CLASSIFIER = "attributes-celeba"
LABEL = "Mouth_Slightly_Open"


def choose_start(opening: np.ndarray, grid: tuple[float, ...] = GRID) -> float:
    """opening (len(grid),): the mouth opening measured at `grid` (motion amounts, including 0 and each start + 1)
    -> the start s <= 0 of the stretch [s, s + 1] that opens it most, 0 unless another opens it MIN_GAIN more."""
    opening = np.asarray(opening, np.float64)
    assert opening.shape == (len(grid),), (opening.shape, len(grid))
    at = {round(g, 6): float(o) for g, o in zip(grid, opening)}
    gains = {s: at[round(s + 1, 6)] - at[round(s, 6)] for s in grid if s <= 0 and round(s + 1, 6) in at}
    assert 0.0 in gains, grid
    best = max(gains, key=lambda s: (gains[s], s))  # on a tie, the start nearer the face
    return float(best) if np.isfinite(gains[best]) and gains[best] >= gains[0.0] + MIN_GAIN else 0.0


@torch.no_grad()
def mouth_start(generator: torch.nn.Module, latent: torch.Tensor, space: str, direction: torch.Tensor, extent: float,
                recipe: str, classifier=None) -> dict[str, object]:
    """latent (1, D), or (1, n_ws, D) in w+, rendered by `generator` along `direction` (D,) times `extent` (the
    motion amount) at GRID -> {"start": motion amounts (<= 0) where the voice's pause puts the mouth, "opening": the
    logits measured at GRID}. classifier: the CelebA attribute classifier (default: weights/attributes-celeba)."""
    from ..checkpoint import resolve_model_path
    from ..latent import synthesize
    from .edits import load_classifier

    assert latent.shape[0] == 1 and direction.ndim == 1 and latent.shape[-1] == direction.shape[0], (latent.shape, direction.shape)
    clf = classifier or load_classifier(resolve_model_path(CLASSIFIER))
    steps = torch.tensor(GRID, dtype=latent.dtype) * float(extent)
    offs = steps[:, None] * direction.to(latent)[None]
    lat = latent + (offs[:, None, :] if latent.ndim == 3 else offs)
    frames = torch.cat([synthesize(generator, lat[i : i + 16], space).clamp(-1, 1) for i in range(0, len(lat), 16)])
    p = clf.predict(frames, recipe)[LABEL].double().clamp(1e-6, 1 - 1e-6)  # (a w+ latent stays w+: edits._render is w's)
    opening = torch.logit(p).numpy()
    return {"start": choose_start(opening), "opening": [round(float(x), 3) for x in opening]}
