"""The smile's corners drawn at the photo's resolution (dgf_core/faces/smile.py) and their place in a photo memory."""
from __future__ import annotations

import numpy as np

from dgf_core.faces.smile import LIFT, SPREAD, WIDEN, smile_offsets

CORNERS = np.array([[40.5, 60.5], [80.5, 60.5]])  # continuous coordinates: pixel centres at (40, 60) and (80, 60)
D = 40.0


def test_the_corners_go_up_and_out_and_far_skin_stays():
    assert not smile_offsets(100, 120, CORNERS, D, 0.0).any()
    off = smile_offsets(100, 120, CORNERS, D, 1.0)
    for (cx, cy), side in zip(CORNERS - 0.5, (-1, 1)):
        tx, ty = int(round(cx + side * WIDEN * D)), int(round(cy - LIFT * D))  # where each corner goes
        src = np.array([tx, ty]) + off[ty, tx]
        assert np.linalg.norm(src - [cx, cy]) < 0.5  # the pixel there shows the corner
    assert abs(off[60, 60]).max() < 0.1 * LIFT * D  # between the corners (the lips' middle) almost nothing moves
    assert not off[:10].any() and not off[..., :2, :].any()  # the eyes' rows and the border stay
    far = off[int(60 - LIFT * D - 4 * SPREAD * D) - 2]
    assert not far.any()
    down = smile_offsets(100, 120, CORNERS, D, -1.0)
    assert down[int(60 + LIFT * D), 40, 1] < 0  # a negative amount: the corners fall (content comes from above)


def test_a_photo_smiles_at_its_own_resolution():
    from dgf_core.faces.alignment import load_canonical
    from dgf_core.faces.render import render_photo

    img = np.full((100, 120, 3), 200, np.uint8)
    img[59:62, 40:81] = 40  # a closed mouth: a dark line between the corners
    frames = np.repeat(np.pad(img, ((10, 10), (0, 0), (0, 0)), mode="edge")[None], 3, 0)
    lm = np.array([[40.5, 30.5], [80.5, 30.5], [60.5, 45.5], *CORNERS])
    smile = np.array([0.0, 1.0, 0.0])
    out = render_photo(img, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), frames, load_canonical(), smile=smile,
                       landmarks=lm)
    assert np.array_equal(out[0], img) and np.array_equal(out[2], img)
    rows = lambda f, x: np.nonzero(f[:, x, 0] < 120)[0]  # noqa: E731  the mouth line's rows in column x
    assert rows(out[1], 42).mean() < rows(img, 42).mean() - 0.5 * LIFT * D  # the corners rose
    assert abs(rows(out[1], 60).mean() - rows(img, 60).mean()) < 1.5  # the middle of the lips did not
