"""The head's turn drawn at the photo's resolution: the face rotated as a solid, not only moved by the model.

Along the model's `yaw` direction, a photo memory turns its head by how far the 64-px frames' flow carries it, and
that differs from face to face (docs/motion.md: 16% of 50 photos turned 10 degrees each way; a larger extent turned
more of them but aged the faces, the model's frames drifting along with the turn). So at the photo's resolution the
`yaw` curve moves the model by MODEL_SHARE of its extent only, and the rest of the turn is drawn: the photo's face is
treated as a solid (an ellipsoid with a nose) and rotated about a vertical axis by DEGREES at the curve's full
extent, under orthographic projection, as LivePortrait rotates its implicit 3D keypoints before it warps.

The solid, in units of the eye distance D, around the face's centre (0.3 D below the eyes' midpoint, the photo's own
MTCNN landmarks): an ellipsoid of half-width HALF_WIDTH, half-height HALF_HEIGHT and depth DEPTH, and a nose ridge,
a Gaussian bump at the nose tip (sigma NOSE_SIGMA across, stretched up towards the eyes) sized so that the nose tip
stands `pose.NOSE_DEPTH` in front of the eyes, as in the mean face the head-pose estimate fits: a drawn turn of
d degrees reads as d degrees there. A point at (x, z) moves by x (cos t - 1) + (z - z0) sin t along the eye line,
z0 the solid's mean depth over the face, so the face as a whole stays in place: the nose and the middle of the face
move with the turn, the side of the face that turns away is compressed and the other widened. The movement fades
out with the photo memory's face ellipse (`render.face_weight`), so nothing outside it moves, and it is a smooth
warp (its gradient well below 1), inverted by a few fixed-point steps and added to the frame's flow like the
smile's corners: it composes with the model's motion and never tears the picture. Pure geometry: it does not age
the face, and it turns every face by the same angle.
"""
from __future__ import annotations

import math

import numpy as np

MODEL_SHARE = 0.3  # of the yaw curve moved along the model's direction at the photo's resolution
DEGREES = 11.0  # the drawn turn at the yaw curve's full extent
HALF_WIDTH, HALF_HEIGHT, DEPTH = 1.05, 1.45, 1.0  # the ellipsoid, in eye distances
NOSE_SIGMA = 0.2  # the nose ridge's Gaussian sigma across (eye distances); along it, twice that
RIM_SMOOTH = 0.15  # Gaussian sigma (eye distances) that rounds the ellipsoid's rim
CENTRE_DY = 0.3  # the face's centre below the eyes' midpoint (as the face ellipse's)
INVERSE_STEPS = 4


def face_depth(height: int, width: int, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """For (5, 2) landmarks (MTCNN order) in continuous pixel coordinates: the solid's depth and each pixel centre's
    position along the eye line from the face's centre, both (height, width) float64 in eye distances, the eye
    line's unit vector (2,) and the eye distance in pixels."""
    import cv2  # as faces.eyelids: render, the only caller, has set OpenCV's threads

    from .pose import NOSE_DEPTH

    lm = np.asarray(landmarks, np.float64).reshape(5, 2)
    d = float(np.linalg.norm(lm[1] - lm[0]))
    u = (lm[1] - lm[0]) / d
    v = np.array([-u[1], u[0]])  # down the face
    centre = (lm[0] + lm[1]) / 2 + CENTRE_DY * d * v
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5

    def local(px, py):
        dx, dy = px - centre[0], py - centre[1]
        return (dx * u[0] + dy * u[1]) / d, (dx * v[0] + dy * v[1]) / d

    def ellipsoid(x, y):
        return DEPTH * np.sqrt(np.clip(1.0 - (x / HALF_WIDTH) ** 2 - (y / HALF_HEIGHT) ** 2, 0.0, None))

    def ridge(x, y, nx, ny):  # 1 at the nose tip, along the ridge up to the eyes a little less
        return np.exp(-((x - nx) ** 2) / (2 * NOSE_SIGMA**2) - ((y - ny) ** 2) / (2 * (2 * NOSE_SIGMA) ** 2))

    x, y = local(xx, yy)
    nx, ny = local(*lm[2])
    _, ey = local(*((lm[0] + lm[1]) / 2))
    eyes = float(ellipsoid(np.array([-0.5, 0.5]), np.array([ey, ey])).mean())
    at_eyes = float(ridge(np.array([-0.5, 0.5]), np.array([ey, ey]), nx, ny).mean())
    amp = max(0.0, (NOSE_DEPTH - (float(ellipsoid(nx, ny)) - eyes)) / max(1.0 - at_eyes, 1e-6))
    z = ellipsoid(x, y)  # smoothed at its rim, where the sphere's slope is steep (a fold in the warp otherwise)
    z = cv2.GaussianBlur(z, (0, 0), RIM_SMOOTH * d)
    return z + amp * ridge(x, y, nx, ny), x, u, d


class Turn:
    """The drawn turn of one face: its solid computed once, `offsets(degrees)` per frame. landmarks: (5, 2), the
    face's (MTCNN order), in continuous pixel coordinates of a (height, width) picture. weight: (height, width) in
    [0, 1], how much of the turn each pixel of the still face gets (the face ellipse; None: all of it)."""

    def __init__(self, height: int, width: int, landmarks: np.ndarray, weight: np.ndarray | None = None):
        self.shape = (height, width)
        lm = np.asarray(landmarks, np.float64).reshape(5, 2)
        self.ok = bool(np.all(np.isfinite(lm)) and np.linalg.norm(lm[1] - lm[0]) >= 2.0)
        if not self.ok:
            return
        z, x, u, d = face_depth(height, width, lm)
        w = np.ones((height, width)) if weight is None else np.asarray(weight, np.float64)
        # in pixels; depth about the mean over the face, so that the face as a whole stays in place
        self.z = (z - float((z * w).sum() / max(w.sum(), 1e-9))) * d * w
        self.x = x * d * w  # along the eye line
        self.u = u
        self.grid = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))

    def offsets(self, degrees: float) -> np.ndarray:
        """(height, width, 2) float32 source offsets (dx, dy) in pixels that turn the face by `degrees` (> 0:
        towards the image's right, `pose`'s convention): the still pixel that lands on each pixel, minus it."""
        h, w = self.shape
        out = np.zeros((h, w, 2), np.float32)
        if degrees == 0 or not self.ok:
            return out
        t = math.radians(float(degrees))
        along = self.x * (math.cos(t) - 1.0) + self.z * math.sin(t)  # forward, along the eye line
        fwd = np.stack([along * self.u[0], along * self.u[1]], -1).astype(np.float32)
        import cv2

        gx, gy = self.grid
        for _ in range(INVERSE_STEPS):  # s = p - fwd(s)
            out = -cv2.remap(fwd, gx + out[..., 0], gy + out[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
        return out


def turn_offsets(height: int, width: int, landmarks: np.ndarray, degrees: float,
                 weight: np.ndarray | None = None) -> np.ndarray:
    """`Turn(height, width, landmarks, weight).offsets(degrees)`: one frame's offsets."""
    return Turn(height, width, landmarks, weight).offsets(degrees)
