"""The eyelids that draw a blink (dgf_core/faces/eyelids.py) and their use in both renders."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dgf_core.faces.eyelids import EYE_HALF_WIDTH, FROM_BELOW, LOWER, REACH, UPPER, close_eyes, eyelid_warp

EYES = np.array([[40.5, 50.5], [80.5, 50.5]])  # continuous coordinates: pixel centres at 40 and 80 (row 50)
LANDMARKS = np.concatenate([EYES, [[60.5, 65.5], [48.5, 80.5], [72.5, 80.5]]])  # eyes, nose, mouth corners
D = 40.0


def face_with_eyes(h: int = 100, w: int = 120) -> np.ndarray:
    """Light skin with two dark almond eyes (pupil centres at EYES) and a darker brow band above them."""
    img = np.full((h, w, 3), 200, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for cx, cy in EYES - 0.5:
        img[((xx - cx) / (0.2 * D)) ** 2 + ((yy - cy) / (0.07 * D)) ** 2 <= 1] = 30
    return img


def test_open_lids_move_nothing_and_closed_lids_cover_each_eye_only():
    off, maps = eyelid_warp(100, 120, EYES, 0.0)
    assert not off.any() and not maps.any()
    off4, maps = eyelid_warp(100, 120, EYES, 1.0)
    off, alpha, lash, below = off4[..., :2], maps[..., 0], maps[..., 1], maps[..., 2]
    for cx, cy in (EYES - 0.5).astype(int):
        assert alpha[cy, cx] == 1.0 and alpha[cy + int(0.8 * LOWER * D), cx] == 1.0  # the eye, down to its lower lid
        assert cy + off[cy, cx, 1] <= cy - UPPER * D + 1e-3  # shows the lid skin from above the lashes
        assert alpha[cy - int(REACH * D) - 2, cx] == 0 and alpha[cy + int(LOWER * D) + 3, cx] == 0  # brow, cheek
        assert alpha[cy, cx + int(EYE_HALF_WIDTH * D) + 2] == 0  # beside the eye
        assert abs(off[cy - int(REACH * D), cx, 1]) < 0.1 * D * REACH  # no jump where the lid starts
    assert alpha[50, 60] == 0 and not off[:, :30].any()  # between and beside the eyes nothing moves
    assert 0 < lash.max() <= 0.5 and not off[..., 0].any()  # a lash line; the lids move down only
    cx, cy = (EYES[0] - 0.5).astype(int)
    assert cy + off4[cy, cx, 3] >= cy + LOWER * D  # the lid's second colour comes from below the eye
    assert below[cy - int(REACH * D), cx] < 0.1 and below[cy, cx] == pytest.approx(FROM_BELOW)  # none at the lid's top


def test_closing_the_eyes_hides_them_and_a_half_blink_hides_less():
    img = face_with_eyes()
    dark = lambda x: int((x[..., 0] < 100).sum())  # noqa: E731  the eyes' dark pixels
    assert np.array_equal(close_eyes(img, EYES, 0.0), img)
    half, shut = close_eyes(img, EYES, 0.5), close_eyes(img, EYES, 1.0)
    assert dark(shut) <= 0.05 * dark(img) < dark(half) < dark(img)
    changed = np.abs(shut.astype(int) - img.astype(int)).sum(-1) > 0
    ys, xs = np.nonzero(changed)
    assert ys.min() >= 50 - REACH * D - 1 and ys.max() <= 50 + LOWER * D + 2  # only around the eyes
    assert xs.min() >= 40 - EYE_HALF_WIDTH * D - 1 and xs.max() <= 80 + EYE_HALF_WIDTH * D + 1


def test_a_photo_blinks_at_its_own_resolution():
    from dgf_core.faces.alignment import load_canonical
    from dgf_core.faces.render import render_photo

    canvas = np.repeat(np.repeat(face_with_eyes(), 2, 0), 2, 1)  # 200 x 240: the "photo"
    to_aligned = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])  # photo -> a 120 x 100 "crop" (the model frames' pixels)
    frames = np.repeat(np.pad(face_with_eyes(), ((10, 10), (0, 0), (0, 0)), mode="edge")[None], 5, 0)  # (5, 120, 120, 3)
    lids = np.array([0.0, 0.5, 1.0, 0.5, 0.0])
    out = render_photo(canvas, to_aligned, frames, load_canonical(), lids=lids, landmarks=LANDMARKS)
    assert out.shape == (5, 200, 240, 3) and np.array_equal(out[0], canvas) and np.array_equal(out[4], canvas)
    dark = lambda x: int((x[..., 0] < 100).sum())  # noqa: E731
    assert dark(out[2]) <= 0.1 * dark(canvas) < dark(out[1]) < dark(canvas)  # a blink, at the photo's 200 px
    assert np.array_equal(out[2][:, :40], canvas[:, :40]) and np.array_equal(out[2][150:], canvas[150:])
    from dgf_core.faces.render import iter_photo_frames

    smile = np.array([0.0, 0.3, 1.0, 0.3, 0.0])
    both = render_photo(canvas, to_aligned, frames, load_canonical(), lids=lids, smile=smile, landmarks=LANDMARKS)
    streamed = list(iter_photo_frames(canvas, to_aligned, frames, load_canonical(), lids=lids, smile=smile,
                                      landmarks=LANDMARKS))
    assert all(np.array_equal(a, b) for a, b in zip(both, streamed)) and len(streamed) == 5  # streamed: the same
    assert not np.array_equal(both[2], out[2])  # the smile moved the mouth as well
    with pytest.raises(ValueError, match="landmarks"):
        render_photo(canvas, to_aligned, frames, load_canonical(), lids=lids)


@pytest.mark.parametrize("render", ["model", "photo"])
def test_blink_runs_on_a_model_without_an_eyes_direction(render, monkeypatch):
    from dgf_core.faces import memory
    from dgf_core.faces.memory import MemorySpec, PhotoFrame, lid_curve, memory_frames
    from dgf_core.generation.motion import motion_curves

    class Gen(torch.nn.Module):  # a "model" whose frames are the test face whatever the latent
        def forward(self, z):
            face = torch.from_numpy(np.pad(face_with_eyes(), ((10, 10), (0, 0), (0, 0)), mode="edge"))
            return face.permute(2, 0, 1)[None].float().div(127.5).sub(1).expand(len(z), -1, -1, -1)

    class Model:
        generator, card, path, name = Gen(), {}, None, "stub"
        config = type("C", (), {"resolution": 120, "z_dim": 4})()

    monkeypatch.setattr(memory, "synthesize", lambda g, lat, space: g(lat))
    monkeypatch.setattr("dgf_core.faces.eyelids.face_landmarks", lambda frame, canonical=None, detector=None:
                        LANDMARKS + [0, 10])
    monkeypatch.setattr("dgf_core.faces.eyelids.photo_landmarks", lambda canvas, detector=None: None)
    spec = MemorySpec(frames=24, fps=24, motion="blink", render=render, mark=False, radius=0.0)
    lids = lid_curve(spec, {})
    assert lids is not None and lids.max() == 1.0 and lids[0] == 0.0
    assert np.allclose(lids, np.clip(motion_curves("blink", 24, 24)["eyes"], 0, 1))
    photo = None
    if render == "photo":
        from dgf_core.faces.alignment import load_canonical

        photo = PhotoFrame(np.pad(face_with_eyes(), ((10, 10), (0, 0), (0, 0)), mode="edge"), np.array(
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), load_canonical())
    frames = memory_frames(Model(), torch.zeros(1, 4), "z", spec, directions={}, photo=photo)
    dark = [int((f[..., 0] < 100).sum()) for f in frames]
    assert dark[0] == max(dark) and min(dark) <= 0.1 * dark[0]  # open, then shut at the blink's peak
    assert dark[int(np.argmax(lids))] == min(dark)
    assert lid_curve(MemorySpec(frames=24, motion="blink", render="model"), {"eyes": torch.zeros(4)}) is None  # its own
