"""Head pose from five landmarks: read back on landmark sets of known pose (rotated mean faces, a differently shaped
face model, mirrored and in-plane rotated sets), and the sign conventions the motions rely on."""
from __future__ import annotations

import numpy as np
import torch

from dgf_core.faces.mtcnn import Faces
from dgf_core.faces.pose import estimate_pose, landmarks_of, mean_face, pose_of, project

RNG = np.random.default_rng(0)
ANGLES = np.stack([RNG.uniform(-40, 40, 300), RNG.uniform(-25, 25, 300), RNG.uniform(-30, 30, 300)], 1)


def test_known_poses_are_read_back():
    lm = project(ANGLES, scale=37.0, offset=(50.0, 60.0))  # pixels, as MTCNN gives them
    assert np.abs(estimate_pose(lm) - ANGLES).max() < 0.5
    noisy = lm + RNG.normal(0, 0.02 * 37.0, lm.shape)  # landmark noise of 2% of the eye distance
    err = np.abs(estimate_pose(noisy) - ANGLES)
    assert err[:, 0].mean() < 3 and err[:, 1].mean() < 4 and err[:, 2].mean() < 1.5, err.mean(0)


def test_another_face_shape_reads_nearly_the_same_pose():
    """A face with other proportions (eyes wider apart, a shorter nose, a wider mouth: the fit cannot know them)
    still reads its yaw and pitch within a few degrees over +-30 / +-20 degrees."""
    face = mean_face()
    face[[0, 1], 0] *= 1.08
    face[2, 1] *= 0.92
    face[[3, 4], 0] *= 1.1
    angles = ANGLES[:, :2]
    angles = np.concatenate([np.clip(angles, [-30, -20], [30, 20]), np.zeros((len(angles), 1))], 1)
    err = np.abs(estimate_pose(project(angles, face, scale=20.0)) - angles)
    assert err[:, 0].max() < 4 and err[:, 1].max() < 8, err.max(0)


def test_sign_conventions_mirror_and_in_plane_rotation():
    right = project(np.array([[20.0, 0.0, 0.0]]))[0]  # turned towards the image's right: the nose moves right
    assert right[2, 0] > (right[0, 0] + right[1, 0]) / 2
    down = project(np.array([[0.0, 12.0, 0.0]]))[0]  # chin down: the nose tip moves down towards the mouth
    assert down[2, 1] > project(np.zeros((1, 3)))[0, 2, 1]
    assert estimate_pose(right)[0] > 19 and estimate_pose(down)[1] > 11
    lm = project(ANGLES, scale=30.0, offset=(40.0, 40.0))
    mirrored = lm.copy()
    mirrored[..., 0] = 80.0 - mirrored[..., 0]
    mirrored = mirrored[:, [1, 0, 2, 4, 3]]  # left/right as seen swap in the mirror
    e, m = estimate_pose(lm), estimate_pose(mirrored)
    np.testing.assert_allclose(m, e * [-1, 1, -1], atol=1e-6)
    th = np.radians(25.0)  # the whole set rotated in the image plane: only roll changes
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    turned = estimate_pose((lm - 40.0) @ rot.T + 40.0)
    np.testing.assert_allclose(turned[:, :2], e[:, :2], atol=1e-4)
    np.testing.assert_allclose(turned[:, 2], e[:, 2] + 25.0, atol=1e-4)


def test_missing_landmarks_give_nan_and_single_sets_work():
    lm = project(np.array([[10.0, 5.0, 0.0], [0.0, 0.0, 0.0]]))
    lm[1, 3] = np.nan
    out = estimate_pose(lm)
    assert out.shape == (2, 3) and np.isnan(out[1]).all() and abs(out[0, 0] - 10) < 0.5
    assert estimate_pose(lm[0]).shape == (3,)


class PlantedDetector:
    """A stand-in MTCNN that finds one face per image, posed by the image's brightness: yaw = 40 * mean(red - blue)."""

    def __call__(self, batch):
        out = []
        for img in batch:  # (H, W, 3) uint8, framed by landmarks_of's grey border
            x = img.astype(np.float64) / 127.5 - 1
            yaw = 40.0 * float((x[..., 0] - x[..., 2]).mean())
            lm = project(np.array([[yaw, 0.0, 0.0]]), scale=img.shape[1] * 0.2, offset=(img.shape[1] / 2, img.shape[0] / 2))
            out.append(Faces(np.array([[0, 0, 1, 1]], np.float32), np.array([0.99], np.float32), lm.astype(np.float32)))
        return out


def test_pose_of_maps_landmarks_back_to_the_image():
    img = torch.full((3, 3, 16, 16), 128, dtype=torch.uint8)
    img[1, 0] = 200  # redder: turned right
    img[2, 2] = 200  # bluer: turned left
    lm, prob = landmarks_of(img, PlantedDetector(), side=32, pad=0.25)
    assert lm.shape == (3, 5, 2) and (prob > 0.9).all()
    assert abs(lm[0, :2, 0].mean() - 8.0) < 0.2  # eyes centred in the 16-px image, not the framed 48-px one
    yaw = pose_of(img, PlantedDetector())[:, 0]
    assert abs(yaw[0]) < 0.5 and yaw[1] > 5 and yaw[2] < -5
