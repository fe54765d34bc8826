"""The head's turn drawn at the photo's resolution (dgf_core/faces/turn.py) and its place in a photo memory."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dgf_core.faces.alignment import load_canonical
from dgf_core.faces.pose import estimate_pose
from dgf_core.faces.render import face_weight
from dgf_core.faces.turn import Turn, turn_offsets

SIDE = 256
CANON = load_canonical()
LM = CANON * SIDE  # a face at the crop recipe's canonical landmarks


def moved_landmarks(off: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where each still point shows up after the warp: the pixel p with p + off(p) nearest the point, refined."""
    gy, gx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64) + 0.5
    sx, sy = gx + off[..., 0], gy + off[..., 1]
    out = []
    for q in points:
        k = np.unravel_index(np.argmin((sx - q[0]) ** 2 + (sy - q[1]) ** 2), sx.shape)
        out.append([gx[k] - (sx[k] - q[0]), gy[k] - (sy[k] - q[1])])
    return np.array(out)


@pytest.mark.parametrize("degrees", [-7.0, 4.0, 10.0])
def test_a_drawn_turn_reads_as_its_degrees(degrees):
    off = turn_offsets(SIDE, SIDE, LM, degrees)
    before = estimate_pose(LM)[0]
    after = estimate_pose(moved_landmarks(off, LM))[0]
    assert abs((after - before) - degrees) < 0.15 * abs(degrees) + 0.5  # the head-pose estimate reads the turn
    assert np.sign(np.median(moved_landmarks(off, LM[2:3])[:, 0] - LM[2, 0])) == np.sign(degrees)  # the nose leads


def test_the_turn_is_smooth_and_stays_inside_the_face():
    assert not turn_offsets(SIDE, SIDE, LM, 0.0).any()
    w = face_weight(SIDE, CANON)
    off = Turn(SIDE, SIDE, LM, w).offsets(8.0)
    assert not off[w == 0].any()  # outside the face ellipse nothing moves
    grad = max(np.abs(np.diff(off[..., 0], axis=1)).max(), np.abs(np.diff(off[..., 0], axis=0)).max())
    assert grad < 0.5  # a smooth warp: it never folds the picture
    assert np.abs(off).max() < 0.25 * np.linalg.norm(LM[1] - LM[0])  # a turn, not a slide
    assert np.abs(off[..., 1]).max() < 0.01 * np.abs(off[..., 0]).max()  # along the (almost level) eye line only
    bad = np.full((5, 2), np.nan)
    assert not turn_offsets(SIDE, SIDE, bad, 8.0).any()  # no landmarks: nothing drawn


def test_a_photo_turns_at_its_own_resolution_and_streams_the_same():
    from dgf_core.faces.render import iter_photo_frames, render_photo

    rng = np.random.default_rng(0)
    canvas = (rng.random((160, 160, 3)) * 255).astype(np.uint8)  # texture everywhere, so any movement shows
    to_aligned = np.array([[0.4, 0.0, 0.0], [0.0, 0.4, 0.0]])  # photo -> the 64-px "model frames"
    frames = np.repeat(np.asarray(canvas[::2, ::2][:64, :64])[None], 3, 0)  # still model: only the drawn turn moves
    lm = CANON * 64
    turn = np.array([0.0, 8.0, -8.0])
    out = render_photo(canvas, to_aligned, frames, CANON, turn=turn, landmarks=lm)
    assert np.array_equal(out[0], canvas)
    assert not np.array_equal(out[1], canvas) and not np.array_equal(out[2], canvas)
    w = face_weight(256, CANON)
    import cv2

    inside = cv2.warpAffine(w, np.linalg.inv(np.vstack([to_aligned * 4, [0, 0, 1]]))[:2], (160, 160)) > 0
    assert np.array_equal(out[1][~inside], canvas[~inside])  # outside the face nothing moves
    streamed = list(iter_photo_frames(canvas, to_aligned, frames, CANON, turn=turn, landmarks=lm))
    assert all(np.array_equal(a, b) for a, b in zip(out, streamed))
    with pytest.raises(ValueError, match="landmarks"):
        render_photo(canvas, to_aligned, frames, CANON, turn=turn)


def test_a_photo_memory_draws_part_of_the_turn_and_says_so():
    from dgf_core.faces import turn as tn
    from dgf_core.faces.memory import MemorySpec, drawn_turn, memory_latents
    from dgf_core.generation.motion import motion_curves

    spec = MemorySpec(frames=24, fps=12, motion="look-around", render="photo", mark=False)
    yaw = motion_curves("look-around", 24, 12)["yaw"]
    assert np.allclose(drawn_turn(spec), tn.DEGREES * yaw)
    model_spec = MemorySpec(frames=24, fps=12, motion="look-around", render="model", mark=False)
    assert drawn_turn(model_spec) is None and drawn_turn(MemorySpec(render="photo")) is None
    dirs = {"yaw": torch.tensor([1.0, 0.0, 0.0, 0.0]), "pitch": torch.tensor([0.0, 1.0, 0.0, 0.0])}
    lat = torch.zeros(1, 4)
    photo = memory_latents(lat, "z", spec, directions=dirs)
    model = memory_latents(lat, "z", model_spec, directions=dirs)
    assert torch.allclose(photo[:, 0], tn.MODEL_SHARE * model[:, 0], atol=1e-5)  # the model turns by its share only
    assert torch.allclose(photo[:, 1], model[:, 1], atol=1e-5)  # the nod is the model's, whole


def test_the_recipe_records_the_drawn_turn():
    from types import SimpleNamespace

    from dgf_core.faces import turn as tn
    from dgf_core.faces.memory import MemorySpec, memory_recipe

    model = SimpleNamespace(name="m", weights_sha256="0" * 64)
    spec = MemorySpec(frames=24, fps=12, motion="look-around", render="photo", mark=False)
    recipe = memory_recipe(model, torch.zeros(1, 4), "z", spec, size=(64, 80))
    assert recipe["turn"]["degrees"] == tn.DEGREES and recipe["turn"]["model_share"] == tn.MODEL_SHARE
    assert "turn" not in memory_recipe(model, torch.zeros(1, 4), "z", MemorySpec(frames=24, fps=12, motion="smile",
                                                                                render="photo"), size=(64, 80))
