"""Alignment: similarity fit, warp geometry, face choice, tight photos (padding, notices, refusals) and their
user-facing messages; a fake detector, except where a test says it runs the shipped MTCNN (weights/mtcnn) on the
synthetic scene in tests/data (two faces made by the shipped DCGAN)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dgf_core.faces.alignment import (
    AlignmentError,
    Detection,
    align_face,
    apply_transform,
    choose_face,
    estimate_similarity,
    extend_photo,
    load_canonical,
    missing_parts,
    save_canonical,
    warp_image,
)
from dgf_core.faces.mtcnn import Faces

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

    def __call__(self, img):
        off = (img.size[0] - self.photo_size[0]) / 2
        if not self.faces:
            return [Faces(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))]
        return [Faces(np.stack([f.box for f in self.faces]) + off, np.array([f.prob for f in self.faces]),
                      np.stack([f.landmarks for f in self.faces]) + off)]


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
    with pytest.raises(AlignmentError, match="no face found in this photo"):
        align_face(photo, 16, detector=FakeDetector([], photo.size), canonical=CANON)
    with pytest.raises(AlignmentError, match="too small"):
        align_face(photo, 16, detector=FakeDetector([det(50, 50, 10)], photo.size), canonical=CANON)
    with pytest.raises(ValueError, match="sizes"):
        align_face(photo, 4, detector=FakeDetector([det(50, 50, 80)], photo.size), canonical=CANON)


def test_a_face_in_the_corner_is_padded_with_a_notice_not_refused():
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8))
    face = det(150, 150, 45)  # most of the crop lies beyond the photo, the face itself is inside it
    (al,) = align_face(photo, 32, detector=FakeDetector([face], photo.size), canonical=CANON)
    assert al.outside > 0.25 and al.image.shape == (3, 32, 32)  # the former rule refused over 25%
    assert len(al.notices) == 1 and "cropped close to the face" in al.notices[0] and f"{al.outside:.0%}" in al.notices[0]
    # a face well inside a larger photo: nothing filled in, no notice
    (al,) = align_face(photo, 32, detector=FakeDetector([det(70, 70, 45)], photo.size), canonical=CANON)
    assert al.outside == 0.0 and al.notices == []


@pytest.mark.parametrize("x0, y0, side, parts", [
    (-30, 60, 80, ["the eye on the left", "the left corner of the mouth", "the left side of the face"]),
    (60, -30, 80, ["the eye on the left", "the eye on the right", "the top of the head"]),
    (150, 60, 80, ["the eye on the right", "the right corner of the mouth", "the right side of the face"]),
    (60, 150, 80, ["the left corner of the mouth", "the right corner of the mouth", "the chin"]),
    (60, 200 - 80 * 1.2, 80, []),  # the box reaches a fifth of its side past the bottom edge: still aligned
    (60, 60, 80, []),
])
def test_refused_only_when_part_of_the_face_is_outside_naming_it(x0, y0, side, parts):
    photo = Image.new("RGB", (200, 200), (100, 120, 140))
    face = det(x0, y0, side)
    assert missing_parts(face, 200, 200) == parts
    if parts:
        with pytest.raises(AlignmentError) as e:
            align_face(photo, 16, detector=FakeDetector([face], photo.size), canonical=CANON)
        assert str(e.value).startswith("part of the face is outside the photo (") and all(p in str(e.value) for p in parts)
    else:
        assert align_face(photo, 16, detector=FakeDetector([face], photo.size), canonical=CANON)[0].size == 16


def test_extend_photo_mirrors_then_blurs_and_fades_beyond_the_edge():
    rng = np.random.default_rng(4)
    arr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    arr[:, :20] = [200, 30, 30]  # left half red, right half noise
    photo = Image.fromarray(arr)
    out = np.asarray(extend_photo(photo, (-60, -10, 50, 50), side=20.0)).astype(int)  # 60 px past the left edge
    assert out.shape == (60, 110, 3)
    assert np.array_equal(out[10:50, 60:100], arr[:, :40])  # inside the photo: unchanged
    assert np.abs(out[10:50, 59] - arr[:, 1]).max() < 10  # right past the edge: the mirrored red, barely blurred
    median = np.median(arr.reshape(-1, 3), 0)
    assert np.abs(out[10:50, :2] - median).max() <= 1  # 0.9 face sides (18 px) and farther: the median colour
    inside = np.asarray(extend_photo(photo, (5, 5, 30, 30), side=20.0))
    assert np.array_equal(inside, arr[5:30, 5:30])  # a region inside the photo is a plain crop
    # the heavy blur removes mirrored detail: noise mirrored past the right edge is smoothed
    right = np.asarray(extend_photo(photo, (0, 0, 60, 40), side=20.0)).astype(float)
    assert right[:, 48:52].std(axis=0).mean() < 0.5 * arr[:, 28:32].astype(float).std(axis=0).mean()


@pytest.fixture(scope="module")
def scene():
    from pathlib import Path

    with Image.open(Path(__file__).resolve().parent / "data" / "mtcnn-scene.png") as im:
        return im.convert("RGB")


def test_real_mtcnn_several_faces_the_largest_is_used(scene):
    (al,) = align_face(scene, 32, canonical=CANON)
    assert al.notices == ["2 faces found; using the largest one"]
    assert 30 < al.detection.box[0] < 45 and al.detection.side > 45  # the big face at (16, 36), 104 px


def test_real_mtcnn_a_face_filling_the_photo_is_aligned_with_a_notice(scene):
    tight = scene.crop((30, 50, 96, 140))  # the big face's box, little more: like a UTKFace chip or a passport photo
    small, big = align_face(tight, [16, 64])
    assert small.notices == big.notices and len(big.notices) == 1 and "cropped close to the face" in big.notices[0]
    assert big.outside == small.outside > 0.4
    # where the crop is inside the photo, the aligned face is the one from the roomier scene (the landmarks found
    # in the tighter photo shift a little)
    ref = align_face(scene, 64)[0]
    centre = (slice(None), slice(24, 40), slice(24, 40))
    assert (big.image[centre].int() - ref.image[centre].int()).abs().float().mean() < 8


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
