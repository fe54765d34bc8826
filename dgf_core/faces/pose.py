"""Head pose (yaw, pitch, roll in degrees) from MTCNN's five landmarks.

A rigid mean face of the five points is fitted to the landmarks under scaled orthographic projection
(rotation, scale, translation; least squares by Gauss-Newton). Conventions, in the image as seen:
- yaw > 0: the face turns towards the image's right (its nose moves right);
- pitch > 0: the chin goes down (a nod; the nose tip moves down towards the mouth);
- roll > 0: clockwise in the image (x right, y down), as the eye line's angle.

The mean face (`mean_face`, in units of the distance between the eyes; x right, y down, z towards the camera):
its frontal x/y are the canonical landmarks of CelebA's crop (`canonical_landmarks.json`, the median over 499
faces, which look straight ahead on average), made left-right symmetric; its depths come from the Multi-PIE
68-point mean face (as distributed with hysts/pytorch_mpiigaze_demo, `face_model_68.py`; outer eye corners
90 mm apart): the eye centres (mean of each eye's six points) lie 35.3 mm behind the nose tip and 65 mm apart, the
mouth corners 1.4 mm behind the eyes, so NOSE_DEPTH = 0.54 and MOUTH_DEPTH = -0.02 eye distances. (That model's
eye-to-mouth height, 1.02 eye distances, and mouth width, 0.88, agree with CelebA's 1.03 and 0.88.) Degrees scale
with these depths: yaw and pitch come from how far the nose tip moves against the eyes and mouth, so a depth 20%
off reads about 20% more or fewer degrees at small angles. Five points, one of them off the face's plane, carry
little information about pitch; the fit also reads individual proportions (a long nose) as pose, so single-face
pitch is a rough estimate; averages over many faces and changes of one face along an edit are what it is for.

Checked (tests/test_pose.py; docs/motion-directions.md): landmarks of the mean face rotated by known angles and
projected are read back within 0.5 degree (noise-free) and within a few degrees with landmark noise; a mirrored
face reads the opposite yaw and the same pitch; an in-plane rotation changes roll only.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

NOSE_DEPTH = 0.54  # nose tip in front of the eyes' plane, in eye distances (Multi-PIE mean face: 35.3 mm / 65 mm)
MOUTH_DEPTH = -0.02  # mouth corners behind it (1.4 mm)
GN_ITERS = 25


def mean_face(recipe: str = "celeba-center-crop") -> np.ndarray:
    """(5, 3) mean face in eye distances, origin between the eyes; x right, y down, z towards the camera."""
    from .alignment import load_canonical

    c = load_canonical(recipe)
    c = (c + c[[1, 0, 2, 4, 3]] * [-1, 1] + [1, 0]) / 2  # made left-right symmetric: the mirror image reads -yaw
    mid = (c[0] + c[1]) / 2
    xy = (c - mid) / np.linalg.norm(c[1] - c[0])
    z = np.array([0.0, 0.0, NOSE_DEPTH, MOUTH_DEPTH, MOUTH_DEPTH])
    return np.concatenate([xy, z[:, None]], 1)


def rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(N,) angles in radians -> (N, 3, 3) R = R_roll @ R_pitch @ R_yaw (yaw applied first) in the conventions above."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    o, i = np.zeros_like(yaw), np.ones_like(yaw)
    r_yaw = np.stack([np.stack([cy, o, sy], -1), np.stack([o, i, o], -1), np.stack([-sy, o, cy], -1)], -2)
    r_pitch = np.stack([np.stack([i, o, o], -1), np.stack([o, cp, sp], -1), np.stack([o, -sp, cp], -1)], -2)
    r_roll = np.stack([np.stack([cr, -sr, o], -1), np.stack([sr, cr, o], -1), np.stack([o, o, i], -1)], -2)
    return r_roll @ r_pitch @ r_yaw


def project(angles_deg: np.ndarray, face: np.ndarray | None = None, scale: float = 1.0,
            offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Landmarks of the mean face posed at (N, 3) yaw, pitch, roll degrees -> (N, 5, 2) (scaled orthographic)."""
    face = mean_face() if face is None else face
    a = np.radians(np.asarray(angles_deg, np.float64).reshape(-1, 3))
    pts = np.einsum("nij,kj->nki", rotation(a[:, 0], a[:, 1], a[:, 2]), face)
    return pts[..., :2] * scale + np.asarray(offset, np.float64)


def _residuals(params: np.ndarray, face: np.ndarray, target: np.ndarray) -> np.ndarray:
    """params (N, 3) radians; target (N, 5, 2) centred -> (N, 10): target minus the best-scaled projection."""
    p = np.einsum("nij,kj->nki", rotation(params[:, 0], params[:, 1], params[:, 2]), face)[..., :2]
    p = p - p.mean(1, keepdims=True)
    s = (p * target).sum((1, 2)) / np.maximum((p * p).sum((1, 2)), 1e-12)
    return (target - s[:, None, None] * p).reshape(len(target), -1)


def estimate_pose(landmarks: np.ndarray, recipe: str = "celeba-center-crop") -> np.ndarray:
    """(N, 5, 2) or (5, 2) landmarks (pixels, MTCNN order) -> (N, 3) or (3,) yaw, pitch, roll in degrees.
    Rows with a non-finite landmark give NaN."""
    lm = np.asarray(landmarks, np.float64)
    single = lm.ndim == 2
    lm = lm.reshape(-1, 5, 2)
    ok = np.isfinite(lm).all((1, 2))
    out = np.full((len(lm), 3), np.nan)
    if not ok.any():
        return out[0] if single else out
    face = mean_face(recipe)
    t = lm[ok] - lm[ok].mean(1, keepdims=True)
    t = t / np.maximum(np.linalg.norm(t[:, 1] - t[:, 0], axis=1), 1e-9)[:, None, None]  # eye distance 1
    eye = t[:, 1] - t[:, 0]
    params = np.stack([np.zeros(len(t)), np.zeros(len(t)), np.arctan2(eye[:, 1], eye[:, 0])], 1)
    h, lam = 1e-5, 1e-6
    for _ in range(GN_ITERS):
        r = _residuals(params, face, t)
        jac = np.stack([(_residuals(params + h * e, face, t) - _residuals(params - h * e, face, t)) / (2 * h)
                        for e in np.eye(3)], -1)  # (N, 10, 3)
        jtj = jac.transpose(0, 2, 1) @ jac + lam * np.eye(3)
        step = np.linalg.solve(jtj, -(jac.transpose(0, 2, 1) @ r[..., None]))[..., 0]
        params = params + np.clip(step, -0.3, 0.3)
        params[:, :2] = np.clip(params[:, :2], -math.radians(80), math.radians(80))
        if np.abs(step).max() < 1e-7:
            break
    out[ok] = np.degrees(params)
    return out[0] if single else out


@torch.no_grad()
def landmarks_of(images_u8: torch.Tensor, detector=None, side: int = 96, pad: float = 0.25,
                 batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, R, R) uint8 faces (generated or cropped) -> ((N, 5, 2) landmarks in the images' pixels, NaN where no
    face is found; (N,) MTCNN probability of the face taken, 0 where none). Each image is resized to `side` and
    framed by a grey border of `pad` times its side, as `alignment.detect_faces` frames a photo."""
    from .mtcnn import load_detector

    detector = detector or load_detector()
    n, res = len(images_u8), images_u8.shape[-1]
    lms, probs = np.full((n, 5, 2), np.nan), np.zeros(n)
    off = round(pad * side)
    for i in range(0, n, batch_size):
        x = F.interpolate(images_u8[i : i + batch_size].float(), size=(side, side), mode="bilinear", align_corners=False,
                          antialias=side < res)
        x = F.pad(x, (off, off, off, off), value=128.0).round().clamp(0, 255).to(torch.uint8)
        for j, faces in enumerate(detector(x.permute(0, 2, 3, 1).contiguous().numpy())):
            if len(faces):
                k = int(np.nanargmax(faces.probs))
                lms[i + j] = (faces.landmarks[k].astype(np.float64) - off) * (res / side)
                probs[i + j] = float(faces.probs[k])
    return lms, probs


def pose_of(images_u8: torch.Tensor, detector=None, min_prob: float = 0.9) -> np.ndarray:
    """(N, 3, R, R) uint8 faces -> (N, 3) yaw, pitch, roll degrees; NaN rows where MTCNN finds no face >= min_prob."""
    lm, prob = landmarks_of(images_u8, detector)
    lm[prob < min_prob] = np.nan
    return estimate_pose(lm)
