"""Rendering a memory at the photo's resolution (dgf_core.faces.render): the canvas, the flow, the paste-back."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dgf_core.faces.alignment import load_canonical
from dgf_core.faces.render import (
    MAX_SIDE,
    center_crop_transform,
    compose,
    face_weight,
    iter_photo_frames,
    photo_canvas,
    render_photo,
)

CANON = load_canonical()


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour texture (blurred noise): something optical flow can follow. (h, w, 3) uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    x = cv2.GaussianBlur(x, (0, 0), 3.0)
    x = (x - x.mean()) / x.std() * 50 + 128
    return np.clip(x, 0, 255).astype(np.uint8)


def test_canvas_keeps_the_photo_and_makes_even_sides():
    arr = texture(219, 179)
    canvas, m = photo_canvas(Image.fromarray(arr))
    assert canvas.shape == (218, 178, 3) and np.array_equal(canvas, arr[:218, :178])  # cropped, not resampled
    assert np.allclose(m, [[1, 0, 0], [0, 1, 0]])
    big, m = photo_canvas(Image.fromarray(texture(1501, 1201)))
    assert max(big.shape[:2]) <= MAX_SIDE and big.shape[0] % 2 == 0 and big.shape[1] % 2 == 0
    assert m[0, 0] == pytest.approx(big.shape[1] / 1201) and m[1, 1] == pytest.approx(big.shape[0] / 1501)


def test_center_crop_transform_matches_center_crop_resize():
    from dgf_core.data import center_crop_resize

    arr = texture(90, 120, seed=3)
    crop = np.asarray(center_crop_resize(Image.fromarray(arr), 30), np.float64)
    m = center_crop_transform(120, 90, 30)
    # the crop's pixel centres map back to photo pixels of about the same colour
    inv = np.linalg.inv(m[:, :2])
    for cy, cx in ((5, 5), (15, 20), (25, 10)):
        p = inv @ (np.array([cx + 0.5, cy + 0.5]) - m[:, 2])
        assert np.abs(arr[int(p[1]), int(p[0])].astype(float) - crop[cy, cx]).mean() < 25


def test_face_weight_is_a_smooth_feathered_ellipse():
    w = face_weight(64, CANON)
    assert w.shape == (64, 64) and w.max() == 1.0 and w[0, 0] == 0.0
    eyes = (CANON[:2].mean(0) * 64).astype(int)
    assert w[eyes[1], eyes[0]] == 1.0
    assert np.abs(np.diff(w, axis=1)).max() < 0.25  # no step anywhere: the motion fades out


def _scene(shift_px: float, frames: int = 4):
    """A canvas and model frames of its aligned crop in which the content moves right by up to `shift_px` crop
    pixels and back, as a looping motion does (frame i by sin(pi i / frames) of it); frame 0 is the pivot."""
    import cv2

    canvas = texture(160, 200, seed=1)
    to_aligned = np.array([[64 / 100, 0, -50 * 64 / 100], [0, 64 / 100, -30 * 64 / 100]])  # photo box (50, 30)-(150, 130)
    base = cv2.warpAffine(canvas, to_aligned, (64, 64), flags=cv2.INTER_AREA)
    out = []
    for i in range(frames):
        s = shift_px * np.sin(np.pi * i / frames)
        out.append(cv2.warpAffine(base, np.array([[1, 0, s], [0, 1, 0]], np.float64), (64, 64),
                                  borderMode=cv2.BORDER_REFLECT))
    return canvas, to_aligned, np.stack(out)


def test_frame_zero_is_the_photo_and_the_face_moves_with_the_model():
    canvas, to_aligned, frames = _scene(3.0)
    out = render_photo(canvas, to_aligned, frames, CANON, residual=False)  # the flow's own doing
    assert out.shape == (4,) + canvas.shape and out.dtype == np.uint8
    assert np.array_equal(out[0], canvas)  # the pivot frame: the photo, bit for bit
    # outside the feathered ellipse (mapped into the photo) nothing changes
    w = face_weight(256, CANON)
    ys, xs = np.nonzero(w > 0)
    x0, x1 = 50 + xs.min() * 100 / 256, 50 + (xs.max() + 1) * 100 / 256
    y0, y1 = 30 + ys.min() * 100 / 256, 30 + (ys.max() + 1) * 100 / 256
    outside = np.ones(canvas.shape[:2], bool)
    outside[int(y0) - 1 : int(y1) + 2, int(x0) - 1 : int(x1) + 2] = False
    assert np.array_equal(out[2][outside], canvas[outside])
    # mid-loop the face centre moved right by about 3 crop px = 4.7 photo px (Farneback on smooth 64-px frames and
    # the average with neighbouring frames make it somewhat less)
    cy, cx = 30 + int(CANON[:2, 1].mean() * 100) + 8, 50 + 50
    patch = out[2, cy - 8 : cy + 8, cx - 8 : cx + 8].astype(float)
    errs = {s: np.abs(patch - canvas[cy - 8 : cy + 8, cx - 8 - s : cx + 8 - s]).mean() for s in range(-2, 9)}
    best = min(errs, key=errs.get)
    assert 3 <= best <= 6 and errs[best] < errs[0] / 2, errs


def test_no_motion_no_change_and_the_residual_adds_what_flow_cannot():
    canvas, to_aligned, frames = _scene(0.0, frames=3)
    out = render_photo(canvas, to_aligned, frames, CANON)
    assert all(np.array_equal(f, canvas) for f in out)
    dark = frames.copy()
    c = (CANON[:2].mean(0) * 64).astype(int)  # the eyes' midpoint: a patch goes dark there ("an eyelid")
    dark[1:, c[1] - 3 : c[1] + 3, c[0] - 6 : c[0] + 6] = 0
    with_res = render_photo(canvas, to_aligned, dark, CANON)
    without = render_photo(canvas, to_aligned, dark, CANON, residual=False)
    py, px = 30 + c[1] * 100 // 64, 50 + c[0] * 100 // 64
    region = (slice(1, None), slice(py - 3, py + 3), slice(px - 4, px + 4))
    assert with_res[region].mean() < without[region].mean() - 30


def test_compose_applies_right_to_left():
    a = np.array([[2.0, 0, 1], [0, 2, 0]])
    b = np.array([[1.0, 0, 5], [0, 1, 7]])
    p = np.array([1.0, 1.0])
    assert np.allclose(compose(a, b)[:, :2] @ p + compose(a, b)[:, 2], a[:, :2] @ (b[:, :2] @ p + b[:, 2]) + a[:, 2])


@pytest.mark.parametrize("n, still_at", [(7, 4), (2, None), (3, None)])
def test_streamed_photo_frames_are_the_reference_frames(n, still_at):
    canvas, to_aligned, frames = _scene(3.0, frames=n)
    if still_at is not None:
        frames[still_at] = frames[0]  # a frame back at the pivot stays the photo; its neighbours average with zero
    ref = render_photo(canvas, to_aligned, frames, CANON, flow_side=64)
    done = []
    out = list(iter_photo_frames(canvas, to_aligned, frames, CANON, flow_side=64, progress=lambda d, t: done.append((d, t))))
    assert len(out) == n and all(np.array_equal(a, b) for a, b in zip(out, ref))  # the same pixels, bit for bit
    assert done == [(i + 1, n) for i in range(n)] and np.array_equal(out[0], canvas)


def test_streamed_photo_frames_hold_memory_that_does_not_grow_with_the_clip():
    """Peak memory (numpy's allocations, traced) while a clip is consumed frame by frame, as the MP4 writer does:
    a clip 4 times as long peaks no higher; the reference, holding every frame and flow, grows with it."""
    import tracemalloc

    def peak(n: int, stream: bool) -> int:
        canvas, to_aligned, frames = _scene(3.0, frames=n)
        tracemalloc.start()
        if stream:
            for f in iter_photo_frames(canvas, to_aligned, frames, CANON, flow_side=64):
                del f
        else:
            render_photo(canvas, to_aligned, frames, CANON, flow_side=64)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    frame_bytes = 160 * 200 * 3
    short, long = peak(12, True), peak(48, True)
    assert long < short * 1.1 + frame_bytes, (short, long)
    assert long < 24 * frame_bytes  # a few frames' worth, not 48 frames
    assert peak(48, False) > 48 * frame_bytes > long  # the reference holds the clip
