"""Alignment: similarity fit, warp geometry, face choice and its user-facing errors (no MTCNN weights needed
except in the last test, which uses the ones shipped in the facenet-pytorch wheel)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dgf_core.alignment import (
    AlignmentError, Detection, align_face, apply_transform, choose_face, estimate_similarity, load_canonical,
    save_canonical, warp_image,
)

CANON = np.array([[0.37, 0.47], [0.63, 0.47], [0.5, 0.6], [0.4, 0.72], [0.6, 0.72]])


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    r = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.concatenate([r, [[tx], [ty]]], 1)


def test_known_transform_is_recovered():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    m = similarity(0.37, 23.0, 5.0, -12.0)
    est = estimate_similarity(src, apply_transform(m, src))
    np.testing.assert_allclose(est, m, atol=1e-9)
    # least squares with noise: close, not exact
    noisy = apply_transform(m, src) + rng.normal(0, 0.05, (5, 2))
    est = estimate_similarity(src, noisy)
    assert np.abs(est[:, :2] - m[:, :2]).max() < 0.005
    assert np.abs(apply_transform(est, src) - apply_transform(m, src)).max() < 0.15


def test_similarity_never_reflects():
    src = np.array([[0, 0], [3, 0], [0, 1.0], [1, 2]])
    mirrored = src * [-1, 1]
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_degenerate_points_raise():
    with pytest.raises(ValueError, match="degenerate"):
        estimate_similarity(np.ones((5, 2)), np.zeros((5, 2)))


def dots_image(points: np.ndarray, h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    for i, (x, y) in enumerate(points):
        img[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3, i % 3] = 255  # 5x5 dot centred on pixel (x, y)
    return img


def test_warp_puts_landmarks_on_canonical_positions():
    size = 64
    photo_pts = np.array([[100.5, 80.5], [140.5, 90.5], [118.5, 110.5], [100.5, 130.5], [134.5, 137.5]])
    img = dots_image(photo_pts, 200, 240)
    dst = CANON * size
    m = estimate_similarity(photo_pts, dst)
    out, outside = warp_image(img, m, size)
    assert out.shape == (3, size, size) and outside < 0.05, outside
    expected = apply_transform(m, photo_pts)
    for i, (ex, ey) in enumerate(expected):  # the centroid of each warped dot sits where M sends it
        ch = out[i % 3].numpy()
        y0, x0 = int(ey) - 5, int(ex) - 5
        patch = ch[y0 : y0 + 11, x0 : x0 + 11]
        yy, xx = np.mgrid[y0 : y0 + 11, x0 : x0 + 11] + 0.5
        cx, cy = (patch * xx).sum() / patch.sum(), (patch * yy).sum() / patch.sum()
        assert abs(cx - ex) < 0.6 and abs(cy - ey) < 0.6, (i, cx, cy, ex, ey)


def test_warp_identity_reproduces_image():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out, _ = warp_image(img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), 16)
    assert torch.equal(out.round().to(torch.uint8), torch.from_numpy(img).permute(2, 0, 1))


def det(x0, y0, side, prob=0.99):
    box = np.array([x0, y0, x0 + side, y0 + side], float)
    lm = np.array([[x0, y0], [x0 + side, y0], [x0 + side / 2, y0 + side / 2], [x0, y0 + side], [x0 + side, y0 + side]], float)
    return Detection(box, prob, lm * 0.5 + [side / 4 + x0 / 2, side / 4 + y0 / 2])


def test_choose_face_messages():
    with pytest.raises(AlignmentError, match="no face found"):
        choose_face([])
    with pytest.raises(AlignmentError, match="too small"):
        choose_face([det(0, 0, 12)], min_face_px=40)
    face, notices = choose_face([det(0, 0, 100), det(200, 0, 50)])
    assert face.side == 100 and notices == ["2 faces found; using the largest one"]


class FakeDetector:
    """Stands in for MTCNN: returns the given faces (photo coordinates), shifted by the grey border that
    detect_faces adds around the photo it shows the detector."""

    def __init__(self, faces, photo_size):
        self.faces, self.photo_size = faces, photo_size

    def detect(self, img, landmarks=False):
        off = (img.size[0] - self.photo_size[0]) / 2
        if not self.faces:
            return None, [None], None
        boxes = np.stack([f.box for f in self.faces]) + off
        return boxes, np.array([f.prob for f in self.faces]), np.stack([f.landmarks for f in self.faces]) + off


def test_align_face_takes_largest_and_warps_at_each_size():
    rng = np.random.default_rng(2)
    photo = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    small, big = det(20, 20, 60), det(150, 100, 120)
    faces = align_face(photo, [16, 32], detector=FakeDetector([small, big], photo.size), canonical=CANON)
    assert [f.size for f in faces] == [16, 32]
    assert faces[0].image.shape == (3, 16, 16) and faces[0].image.dtype == torch.uint8
    assert faces[1].detection.box[0] == 150
    assert "using the largest" in faces[0].notices[0]
    np.testing.assert_allclose(apply_transform(faces[1].transform, big.landmarks), CANON * 32, atol=big.side * 0.3)


def test_align_face_errors():
    photo = Image.new("RGB", (200, 200), (128, 128, 128))
    with pytest.raises(AlignmentError, match="no face"):
        align_face(photo, 16, detector=FakeDetector([], photo.size), canonical=CANON)
    with pytest.raises(AlignmentError, match="too small"):
        align_face(photo, 16, detector=FakeDetector([det(50, 50, 10)], photo.size), canonical=CANON)
    with pytest.raises(AlignmentError, match="edge of the photo"):  # a face in the corner: most of the crop is outside
        align_face(photo, 16, detector=FakeDetector([det(150, 150, 45)], photo.size), canonical=CANON)
    with pytest.raises(ValueError, match="sizes"):
        align_face(photo, 4, detector=FakeDetector([det(50, 50, 80)], photo.size), canonical=CANON)


def test_canonical_json_round_trip(tmp_path):
    path = tmp_path / "canon.json"
    save_canonical("r1", {"landmarks": CANON.tolist()}, path)
    save_canonical("r2", {"landmarks": (CANON + 0.01).tolist()}, path)
    np.testing.assert_allclose(load_canonical("r1", path), CANON)
    assert sorted(json.loads(path.read_text())["recipes"]) == ["r1", "r2"]
    with pytest.raises(ValueError, match="no canonical landmarks"):
        load_canonical("nope", path)


def test_shipped_canonical_landmarks_are_plausible():
    pts = load_canonical()
    assert pts.shape == (5, 2)
    assert pts[0, 0] < pts[2, 0] < pts[1, 0]  # nose between the eyes
    assert pts[0, 1] < pts[2, 1] < pts[3, 1]  # eyes above nose above mouth
    assert 0.1 < pts[1, 0] - pts[0, 0] < 0.5


def test_real_mtcnn_finds_no_face_in_a_plain_photo():
    ramp = np.linspace(0, 255, 120, dtype=np.uint8)  # smooth: MTCNN rejects it at once (noise costs it seconds)
    photo = Image.fromarray(np.stack([np.tile(ramp, (120, 1))] * 3, -1))
    with pytest.raises(AlignmentError, match="no face"):
        align_face(photo, 16, canonical=CANON)
