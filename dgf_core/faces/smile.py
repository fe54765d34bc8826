"""The smile's geometry drawn at the photo's resolution: the mouth's corners lift and widen.

At the photo's resolution a smile moved only along the model's `smile` direction shows weakly: the 64-px frames'
flow carries a fraction of the corners' movement, and the residual (teeth, brightness) is all that adds to it
(docs/motion.md: a rise of the smile classifier of 0.28 on photos that start without a smile). So the `smile` curve
also moves the mouth's corners of the photo itself, as LivePortrait drives its lips by a scalar: each corner (MTCNN's
mouth landmarks) goes up by LIFT and out by WIDEN (of the eye distance D) at the curve's full extent, and the skin
around it follows with a Gaussian falloff (sigma SPREAD * D): the cheeks rise with the corners, nothing far from the
mouth moves. It is a smooth warp, added to the frame's flow, so it composes with the model's own motion and never
tears the picture.
"""
from __future__ import annotations

import numpy as np

LIFT = 0.12  # of the eye distance: how far each mouth corner rises at the full smile
WIDEN = 0.06  # how far it moves outwards
SPREAD = 0.15  # Gaussian sigma of the skin that follows a corner


def smile_offsets(height: int, width: int, corners: np.ndarray, eye_distance: float, amount: float) -> np.ndarray:
    """(height, width, 2) float32 source offsets (dx, dy) in pixels that lift the mouth's corners by `amount`
    (0: none, 1: the full smile; negative: the corners fall). corners: (2, 2) the mouth's corners (x, y) in continuous
    pixel coordinates (pixel i covers [i, i + 1)); eye_distance in the same pixels."""
    out = np.zeros((height, width, 2), np.float32)
    corners = np.asarray(corners, np.float64).reshape(2, 2) - 0.5  # -> pixel indices (cv2.remap's)
    d = float(eye_distance)
    if amount == 0 or not np.all(np.isfinite(corners)) or not np.isfinite(d) or d < 2.0:
        return out
    mid = corners.mean(0)
    sigma = SPREAD * d
    reach = int(np.ceil(4 * sigma))
    for c in corners:
        side = 1.0 if c[0] >= mid[0] else -1.0
        vx, vy = amount * WIDEN * d * side, -amount * LIFT * d
        tx, ty = c[0] + vx, c[1] + vy  # where the corner goes: the content there comes from the corner
        x0, x1 = max(0, int(tx) - reach), min(width, int(tx) + reach + 1)
        y0, y1 = max(0, int(ty) - reach), min(height, int(ty) + reach + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        g = np.exp(-((gx - tx) ** 2 + (gy - ty) ** 2) / (2 * sigma**2))
        out[y0:y1, x0:x1, 0] -= (vx * g).astype(np.float32)
        out[y0:y1, x0:x1, 1] -= (vy * g).astype(np.float32)
    return out

