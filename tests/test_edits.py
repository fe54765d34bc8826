"""Edits: direction learning recovers a known boundary, edits move what they should, files round-trip."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_dcgan

from dgf_core.checkpoint import load_model
from dgf_core.faces.alignment import estimate_similarity, invert_transform, load_canonical
from dgf_core.faces.edits import (
    EditError,
    apply_edits,
    compute_directions,
    learn_direction,
    pattern_direction,
    load_classifier,
    load_directions,
    measure_edit,
    orthogonalize,
    parse_edits,
    recipe_warp,
    save_classifier,
    save_directions,
    train_attribute_classifier,
)
from dgf_core.models.attributes import AttributeConfig

torch.set_num_threads(1)


def test_learn_direction_recovers_a_known_boundary():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 12, generator=g) * torch.linspace(0.5, 2.0, 12)  # anisotropic, like W
    true = torch.randn(12, generator=g)
    true /= true.norm()
    d = learn_direction(x, (x @ true > 0.3).long())
    assert float(d @ true) > 0.97 and abs(float(d.norm()) - 1) < 1e-5
    with pytest.raises(EditError, match="both classes"):
        learn_direction(x, torch.ones(2000, dtype=torch.long))


def test_pattern_direction_points_where_the_classes_differ_not_where_they_separate_best():
    """A precise low-variance copy of the attribute (like W's inert coordinates) draws the logistic normal; the
    pattern follows the high-variance coordinate that carries it (the class-mean difference). Isotropic latents
    (z): pattern and normal agree."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, generator=g)
    x = torch.stack([3 * a + torch.randn(4000, generator=g), 0.1 * a + 0.01 * torch.randn(4000, generator=g),
                     torch.randn(4000, generator=g)], 1)
    y = (a > 0).long()
    normal = learn_direction(x, y, l2=1e-6)
    pattern = pattern_direction(x, normal)
    diff = x[y == 1].mean(0) - x[y == 0].mean(0)
    diff /= diff.norm()
    assert float(pattern @ diff) > 0.99 and float(normal @ diff) < 0.5 and abs(float(pattern.norm()) - 1) < 1e-5
    z = torch.randn(4000, 8, generator=g)
    true = torch.randn(8, generator=g)
    n = learn_direction(z, (z @ true > 0).long())
    assert float(pattern_direction(z, n) @ n) > 0.98
    with pytest.raises(EditError, match="do not vary"):
        pattern_direction(torch.ones(10, 3), torch.tensor([1.0, 0.0, 0.0]))


def test_orthogonalize():
    a, b = torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])
    r = orthogonalize(a, b)
    assert abs(float(r @ b)) < 1e-6 and torch.allclose(r, torch.tensor([0.0, 1.0, 0.0]))


def test_apply_edits_shapes_and_limits():
    dirs = {"age": torch.tensor([1.0, 0.0, 0.0]), "gender": torch.tensor([0.0, 2.0, 0.0])}
    z = torch.zeros(2, 3)
    out = apply_edits(z, "z", dirs, {"age": 1.5, "gender": -0.5})
    assert torch.equal(out, torch.tensor([[1.5, -1.0, 0.0]] * 2))
    ws = apply_edits(torch.zeros(1, 4, 3), "w+", dirs, {"age": 1.0})
    assert ws.shape == (1, 4, 3) and torch.equal(ws[0, :, 0], torch.ones(4))
    with pytest.raises(EditError, match="unknown edit 'smile'"):
        apply_edits(z, "z", dirs, {"smile": 1.0})
    with pytest.raises(EditError, match=r"\[-3, 3\]"):
        apply_edits(z, "z", dirs, {"age": 7.0})
    with pytest.raises(EditError, match=r"\[-3, 3\]"):
        apply_edits(z, "z", dirs, {"age": float("nan")})
    assert parse_edits(["age=+1.5", "gender=-0.5"]) == {"age": 1.5, "gender": -0.5}
    with pytest.raises(EditError, match="NAME=AMOUNT"):
        parse_edits(["age"])
    with pytest.raises(EditError, match="NAME=AMOUNT"):
        parse_edits(["age=old"])


def test_recipe_warp_moves_landmarks_between_crop_geometries():
    src, dst = load_canonical("celeba-center-crop"), load_canonical("utkface-chip")
    img = torch.full((1, 3, 64, 64), -1.0)
    x, y = (src[0] * 64).astype(int)  # a 2x2 bright dot on the left eye
    img[0, :, y - 1 : y + 1, x - 1 : x + 1] = 1.0
    out = recipe_warp(img, "celeba-center-crop", "utkface-chip", 32)[0, 0] + 1
    yy, xx = torch.meshgrid(torch.arange(32) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    cx, cy = float((out * xx).sum() / out.sum()), float((out * yy).sum() / out.sum())
    scale = 32 / 64 * (dst[1, 0] - dst[0, 0]) / (src[1, 0] - src[0, 0])  # utk px per celeba px
    ex, ey = dst[0, 0] * 32 + (x - src[0, 0] * 64) * scale, dst[0, 1] * 32 + (y - src[0, 1] * 64) * scale
    assert abs(cx - ex) < 0.5 and abs(cy - ey) < 0.5, (cx, cy, ex, ey)
    same = torch.rand(1, 3, 16, 16)
    assert torch.equal(recipe_warp(same, "utkface-chip", "utkface-chip", 16), same)


def test_classifier_train_save_load(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=g)
    ages, fem = torch.randint(1, 90, (64,), generator=g), torch.randint(0, 2, (64,), generator=g)
    net, card = train_attribute_classifier(x, ages, fem, cfg=AttributeConfig(resolution=16, channels=4), steps=3,
                                           batch_size=16, val=(x[:8], ages[:8], fem[:8]))
    assert card["steps"] == 3 and set(card["heldout"]) == {"n", "age_mae_years", "gender_accuracy"}
    clf = load_classifier(save_classifier(tmp_path / "clf", net, card))
    batch = x[:5].float() / 127.5 - 1
    pred = clf.predict(batch, "utkface-chip")
    with torch.no_grad():
        ref = net(batch)
    torch.testing.assert_close(pred["female"], torch.sigmoid(ref[:, 1]))
    assert pred["age"].shape == (5,) and (pred["age"] > -1).all() and clf.net.cfg.age_mean == net.cfg.age_mean
    deep, card = train_attribute_classifier(x, ages, fem, cfg=AttributeConfig(resolution=16, channels=4, stages=4),
                                            steps=2, batch_size=16, amp=True)
    assert card["bf16_autocast"] and all(p.dtype == torch.float32 for p in deep.parameters())
    assert load_classifier(save_classifier(tmp_path / "deep", deep, card)).net.cfg.stages == 4
    # the crop side that gives the classifier its own pixels: its resolution in its own geometry, more in a wider one
    assert clf.native_side("utkface-chip") == 16
    wide = clf.native_side("celeba-center-crop")
    assert 16 < wide < 64
    ratio = wide * float(np.sqrt(abs(np.linalg.det(invert_transform(estimate_similarity(
        load_canonical("celeba-center-crop"), load_canonical("utkface-chip")))[:, :2])))) / 16
    assert 1.0 <= ratio < 1.0 + 1 / 16  # recipe_warp reads one source pixel per output pixel (rounded up)


class BrightnessClassifier:
    """A stand-in labeller with a known rule: brighter faces are 'older' and 'more female'."""
    sha256 = "fake"

    def predict(self, images, recipe):
        m, r = images.mean((1, 2, 3)), images[:, 0].mean((1, 2))  # absolute rules: no batch statistics
        return {"age": 40 + 1000 * m, "female": torch.sigmoid(1000 * r)}


def test_directions_follow_the_labeller_and_are_tied_to_the_weights(tmp_path):
    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    clf = BrightnessClassifier()
    table = compute_directions(model, clf, n=600, seed=0)
    assert table["space"] == "z" and table["weights_sha256"] == model.weights_sha256
    save_directions(table, tmp_path / "tiny" / "directions.json")
    dirs = load_directions(model)
    assert set(dirs) == {"age", "gender"} and dirs["age"].shape == (16,)
    assert abs(float(dirs["age"] @ dirs["gender"])) < 1e-4 * float(dirs["age"].norm() * dirs["gender"].norm())
    pixel_cosine = lambda a, b, recipe: torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1))
    effect = measure_edit(model, clf, dirs, n=100, likeness=pixel_cosine)
    assert effect["age"]["age_change_years"] > 0 and effect["gender"]["female_prob_change"] > 0
    bigger = measure_edit(model, clf, dirs, n=100, amount=3.0, likeness=pixel_cosine)
    assert bigger["age"]["likeness_to_unedited"] < effect["age"]["likeness_to_unedited"] < 1.0  # further edits, less alike
    other = json.loads((tmp_path / "tiny" / "directions.json").read_text())
    other["weights_sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(EditError, match="other weights"):
        load_directions(model, tmp_path / "other.json")
    with pytest.raises(EditError, match="no edit directions"):
        load_directions(model, tmp_path / "missing.json")
