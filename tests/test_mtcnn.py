"""The project's MTCNN (dgf_core.faces.mtcnn, weights/mtcnn) against facenet-pytorch 2.6.0's output on the same image,
stored once by scripts/make_mtcnn_reference.py (a scene with two faces made by the shipped DCGAN), so neither
facenet-pytorch nor ../shared is needed here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgf_core.checkpoint import CheckpointError
from dgf_core.faces.mtcnn import MTCNN_DIR, FaceDetector, load_detector
from dgf_core.models.mtcnn import MTCNNConfig

DATA = Path(__file__).resolve().parent / "data"
REF = json.loads((DATA / "mtcnn-reference.json").read_text())


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return load_detector()


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    with Image.open(DATA / REF["image"]) as im:
        return im.convert("RGB")


def test_port_gives_facenet_pytorchs_boxes_probabilities_and_landmarks(detector, scene):
    (faces,) = detector(scene)
    assert len(faces) == len(REF["probs"]) == 2  # both pasted faces, in facenet-pytorch's order
    np.testing.assert_allclose(faces.boxes, REF["boxes"], atol=1e-3)
    np.testing.assert_allclose(faces.probs, REF["probs"], atol=1e-5)
    np.testing.assert_allclose(faces.landmarks, REF["landmarks"], atol=1e-3)
    assert faces.boxes.shape == (2, 4) and faces.landmarks.shape == (2, 5, 2)


def test_batches_of_arrays_and_tensors_give_the_stored_probabilities(detector, scene):
    batch = np.stack([np.asarray(scene.crop(c).resize((64, 64), Image.Resampling.BILINEAR)) for c in REF["batch_crops"]])
    for images in (batch, torch.from_numpy(batch)):
        found = detector(images)
        assert len(found) == 2
        for faces, want in zip(found, REF["batch_probs"]):
            np.testing.assert_allclose(faces.probs, want, atol=1e-5)
    # the face-rate metric (mtcnn.face_probabilities) on the same batch: the highest probability per image
    from dgf_core.faces.mtcnn import face_probabilities

    probs = face_probabilities(torch.from_numpy(batch).permute(0, 3, 1, 2), detector)
    np.testing.assert_allclose(probs, [max(p) for p in REF["batch_probs"]], atol=1e-5)


def test_no_face_and_images_too_small_to_search(detector):
    ramp = np.linspace(0, 255, 120, dtype=np.uint8)
    (faces,) = detector(Image.fromarray(np.stack([np.tile(ramp, (90, 1))] * 3, -1)))
    assert len(faces) == 0 and faces.boxes.shape == (0, 4) and faces.landmarks.shape == (0, 5, 2)
    (faces,) = detector(Image.new("RGB", (15, 15), (120, 90, 80)))  # under min_face_size: no pyramid scale at all
    assert len(faces) == 0


def test_shipped_weights_carry_their_source_and_licence():
    meta = json.loads((MTCNN_DIR / "config.json").read_text())
    assert meta["format"] == "dgf-mtcnn/1" and meta["config"] == {"min_face_size": 20, "thresholds": [0.6, 0.7, 0.7],
                                                                  "factor": 0.709}
    card = meta["card"]
    assert "facenet-pytorch 2.6.0" in card["source"] and card["licence"].startswith("MIT")
    licence = (MTCNN_DIR / "LICENSE").read_text()
    for holder in ("Kaipeng Zhang", "David Sandberg", "Timothy Esler"):
        assert f"Copyright (c) 2016 {holder}" in licence or f"Copyright (c) 2019 {holder}" in licence
    assert sum(p.numel() for p in load_detector().net.parameters()) == 6632 + 100178 + 389040  # P-, R-, O-Net


def test_missing_or_altered_weights_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a model folder"):
        load_detector(tmp_path)
    (tmp_path / "config.json").write_text((MTCNN_DIR / "config.json").read_text())
    data = bytearray((MTCNN_DIR / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_detector(tmp_path)


@pytest.mark.parametrize("kw, message", [({"min_face_size": 8}, "min_face_size"), ({"thresholds": (0.6, 0.7)}, "thresholds"),
                                         ({"thresholds": (0.6, 0.7, 1.5)}, "thresholds"), ({"factor": 1.0}, "factor")])
def test_config_checks_its_values(kw, message):
    with pytest.raises(ValueError, match=message):
        MTCNNConfig(**kw)
