"""scripts/measure_motion.py's re-aligned reading: each frame read through its own landmarks, not frame 0's crop."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from dgf_core.faces.alignment import estimate_similarity, load_canonical

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "measure_motion.py"


def load_script():
    spec = importlib.util.spec_from_file_location("measure_motion_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CentreReader:
    """A stand-in classifier whose 'age' is the brightness of the crop's centre: it reads where the face sits."""

    def predict(self, x: torch.Tensor, recipe: str) -> dict[str, torch.Tensor]:
        c = x.shape[-1] // 2
        centre = x[:, 0, c - 2 : c + 2, c - 2 : c + 2].mean((1, 2))
        return {"age": 50 + 20 * centre, "female": (centre + 1) / 2}


def test_a_face_that_moves_reads_the_same_on_its_own_alignment():
    mm = load_script()
    canon = load_canonical()
    size = 32
    lm0 = canon * 128  # the face's landmarks in a 128-px frame
    yy, xx = np.mgrid[0:128, 0:128] + 0.5
    centre = lm0[:2].mean(0) + [0, 0.3 * np.linalg.norm(lm0[1] - lm0[0])]

    def frame(dx: float) -> np.ndarray:  # a bright disc on the face, moved dx px to the right
        disc = ((xx - centre[0] - dx) ** 2 + (yy - centre[1]) ** 2) < 12**2
        return np.repeat(np.where(disc, 230, 30).astype(np.uint8)[..., None], 3, -1)

    frames = np.stack([frame(0), frame(16)])
    found = [(0, lm0), (1, lm0 + [16, 0])]
    reading = mm.realigned_attributes(frames, found, canon, size, CentreReader(), "celeba-center-crop")
    assert abs(reading["age"][1] - reading["age"][0]) < 0.5  # the face moved; on its own alignment it reads the same
    fixed = estimate_similarity(lm0, canon * size)  # frame 0's crop held fixed reads the move as a change
    import cv2

    crops = np.stack([cv2.warpAffine(f, fixed, (size, size), flags=cv2.INTER_AREA) for f in frames])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    held = CentreReader().predict(x, "")["age"]
    assert abs(float(held[1] - held[0])) > 5


def test_the_unwanted_change_is_read_by_the_age_judge_at_its_own_pixels():
    mm = load_script()
    from dgf_core.faces.edits import load_classifier

    reader = mm.default_age_reader()
    assert reader.name == "age-judge-utkface"  # the judge ships; the direction classifier is not its own referee
    judge, labeller = load_classifier(reader), load_classifier(reader.parent / "attributes-utkface")
    assert judge.sha256 != labeller.sha256
    # the 64-px judge reads a CelebA centre crop of about 113 px (a 64-px crop would reach it enlarged), the 32-px
    # labeller the model's own 64-px crop
    assert judge.native_side("celeba-center-crop") > 64 >= labeller.native_side("celeba-center-crop")


def test_age_change_is_read_from_frame_0_under_the_given_prefix():
    mm = load_script()
    reading = {"age": np.array([30.0, 31.0, 27.0, 30.5]), "female": np.array([0.2, 0.25, 0.1, 0.2])}
    out = mm.age_change(reading, "also_realigned_")
    assert out == {"also_realigned_age_change_years_mean": 1.12, "also_realigned_age_change_years_p90": 2.4,
                   "also_realigned_age_change_years_max": 3.0, "also_realigned_female_prob_change_max": 0.1}
