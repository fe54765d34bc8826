"""Motion directions: the CelebA label classifier, the regression pattern, conditional orthogonality, the choice of
motion_amount, and the directions.json contract (age / gender kept, motions added) on a tiny model with planted
labellers whose rules are known."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import make_tiny_dcgan, write_tiny_directions

from dgf_core.checkpoint import load_model
from dgf_core.faces.mtcnn import Faces
from dgf_core.faces.pose import project
from dgf_core.faces.edits import (
    EditError,
    apply_edits,
    binary_scores,
    covariance_direction,
    load_classifier,
    load_directions,
    save_classifier,
    train_label_classifier,
)
from dgf_core.faces.motion_directions import (
    MOTION_NAMES,
    apart_from_all,
    choose_amount,
    cosines,
    compute_motion_directions,
    learn_motion_directions,
    orthogonal_to,
    pose_filter,
)
from dgf_core.models.attributes import AttributeConfig, AttributeNet

torch.set_num_threads(1)


def test_label_classifier_trains_saves_and_predicts_its_labels(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 3, 16, 16, generator=g) * 2 - 1
    y = torch.stack([(x[:, 0].mean((1, 2)) > 0), (x[:, 2].mean((1, 2)) > 0.05)], 1).long()
    cfg = AttributeConfig(resolution=16, channels=4)
    net, card = train_label_classifier(x, y, ["Smiling", "Narrow_Eyes"], cfg=cfg, steps=3, batch_size=16, val=(x[:32], y[:32]))
    assert net.cfg.labels == ("Smiling", "Narrow_Eyes") and card["steps"] == 3
    assert set(card["heldout"]["Smiling"]) >= {"accuracy", "majority_accuracy", "roc_auc", "balanced_accuracy"}
    clf = load_classifier(save_classifier(tmp_path / "clf", net, card))
    assert clf.net.cfg.labels == ("Smiling", "Narrow_Eyes")  # a JSON list comes back as the tuple
    pred = clf.predict(x[:5], "utkface-chip")
    with torch.no_grad():
        ref = torch.sigmoid(net(x[:5]))
    assert set(pred) == {"Smiling", "Narrow_Eyes"}
    torch.testing.assert_close(pred["Narrow_Eyes"], ref[:, 1])
    with pytest.raises(ValueError, match="distinct"):
        AttributeConfig(labels=("a", "a"))
    assert AttributeNet(AttributeConfig(resolution=16, channels=4))(x[:2]).shape == (2, 2)  # the age/gender head is kept


def test_binary_scores_on_known_cases():
    label = torch.tensor([0, 0, 0, 1, 1])
    s = binary_scores(torch.tensor([0.1, 0.2, 0.6, 0.7, 0.9]), label)
    assert s["roc_auc"] == 1.0 and s["accuracy"] == 0.8 and s["majority_accuracy"] == 0.6
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)
    assert binary_scores(torch.tensor([0.9, 0.8, 0.7, 0.2, 0.1]), label)["roc_auc"] == 0.0


def test_covariance_direction_points_where_the_target_varies():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 6, generator=g) * torch.tensor([3.0, 0.1, 1.0, 1.0, 1.0, 1.0])  # anisotropic, like W
    t = x[:, 0] + 30 * x[:, 1] + 0.1 * torch.randn(3000, generator=g)  # the low-variance coordinate is inert
    d = covariance_direction(x, t)
    assert abs(float(d.norm()) - 1) < 1e-5 and float(d[0]) > 0.9  # the pattern follows the high-variance carrier
    with pytest.raises(EditError, match="varies"):
        covariance_direction(x[:10], torch.ones(10))


def _planted_measures(lat: torch.Tensor, true: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    logit = {k: (lat @ v).numpy() for k, v in true.items()}
    p = {k: 1 / (1 + np.exp(-v)) for k, v in logit.items()}
    return {"smile": p["smile"], "mouth_open": p["mouth_open"], "eyes": p["eyes"], "yaw": 20 * logit["yaw"], "pitch": 10 * logit["pitch"]}


def test_learnt_motions_follow_their_measures_apart_from_age_gender_and_each_other():
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(4000, 12, generator=g)
    basis = torch.linalg.qr(torch.randn(12, 12, generator=g))[0].T  # orthonormal rows
    age, gender = basis[0], basis[1]
    true = {"smile": basis[2] + 0.5 * age, "mouth_open": basis[3] + 0.8 * basis[2] - 0.6 * basis[6], "eyes": basis[4] + 0.5 * basis[3],
            "yaw": basis[5], "pitch": basis[6] + 0.5 * basis[5]}
    dirs = learn_motion_directions(lat, _planted_measures(lat, true), age * 3, gender)
    assert set(dirs) == set(MOTION_NAMES)
    for name, d in dirs.items():
        assert abs(float(d @ age)) < 1e-5 and abs(float(d @ gender)) < 1e-5, name
    assert abs(float(dirs["mouth_open"] @ dirs["smile"])) < 1e-5 and abs(float(dirs["pitch"] @ dirs["yaw"])) < 1e-5
    assert abs(float(dirs["eyes"] @ dirs["smile"])) < 1e-5 and abs(float(dirs["eyes"] @ dirs["mouth_open"])) < 1e-5
    meas = _planted_measures(lat, true)
    for face in ("smile", "mouth_open", "eyes"):  # no nod or turn with the face motions (pitch leans on mouth_open here)
        for pose in ("yaw", "pitch"):
            assert abs(float(dirs[face].double() @ pose_filter(lat, meas[pose]))) < 1e-5, (face, pose)
    alone = learn_motion_directions(lat, _planted_measures(lat, true), age * 3, gender, names=("eyes", "pitch"))
    assert set(alone) == {"eyes", "pitch"} and torch.allclose(alone["eyes"], dirs["eyes"]) and torch.allclose(alone["pitch"], dirs["pitch"])
    for name, carrier in (("smile", basis[2]), ("mouth_open", basis[3]), ("eyes", basis[4]), ("yaw", basis[5]), ("pitch", basis[6])):
        assert float(dirs[name] @ carrier) > 0.9, (name, float(dirs[name] @ carrier))


def test_attribute_filters_keep_the_head_pose_from_ageing_in_an_anisotropic_space():
    g = torch.Generator().manual_seed(3)
    scale = torch.tensor([3.0, 0.3] + [1.0] * 8)  # W-like: one coordinate carries far more variance than another
    lat = torch.randn(5000, 10, generator=g) * scale
    age_pattern = torch.zeros(10)
    age_pattern[0] = 1.0  # the age *direction* (a pattern) the model ships
    yaw_true, age_read = torch.zeros(10), torch.zeros(10)
    yaw_true[[0, 2]] = torch.tensor([0.3, 1.0])
    age_read[[0, 1]] = torch.tensor([0.05, 2.0])  # the age the classifier reads leans on the low-variance coordinate
    meas = {"yaw": (20 * lat @ yaw_true).numpy(), "pitch": (10 * lat[:, 3]).numpy(), "age": (30 + lat @ age_read).numpy(),
            "female": (0.5 + 0.01 * lat[:, 4]).numpy()}
    gender = torch.zeros(10)
    gender[5] = 1.0
    plain = learn_motion_directions(lat, meas, age_pattern, gender, names=("yaw",))["yaw"].double()
    kept = learn_motion_directions(lat, meas, age_pattern, gender, names=("yaw",), attribute_filters=True)["yaw"].double()
    f_age = pose_filter(lat, meas["age"])
    assert abs(float(kept @ f_age)) < 1e-6 and abs(float(kept @ age_pattern.double())) < 1e-6  # neither ages
    assert abs(float(plain @ f_age)) > 10 * abs(float(kept @ f_age)) + 1e-3  # without the filters the turn ages
    assert float(kept[2]) > 0.9  # and it still turns


def test_orthogonal_to_leaves_a_unit_vector_orthogonal_to_the_span():
    g = torch.Generator().manual_seed(2)
    d, a, b = torch.randn(3, 16, generator=g)
    out = orthogonal_to(d, [3 * a, b, a + b])  # any scale, a dependent vector among them
    assert out.dtype == torch.float64 and abs(float(out.norm()) - 1) < 1e-9
    assert abs(float(out @ a.double())) < 1e-6 and abs(float(out @ b.double())) < 1e-6  # float32 inputs
    assert float(out @ d.double()) > 0  # what is left of d, not its opposite
    with pytest.raises(EditError, match="span"):
        orthogonal_to(2 * a - b, [a, b])
    c = cosines({"x": a, "y": -2 * a, "z": b})
    assert c["x"]["y"] == -1.0 and "x" not in c["x"] and c["z"]["x"] == c["x"]["z"]


def test_pose_filter_is_the_regression_not_the_pattern_in_an_anisotropic_space():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5000, 4, generator=g) @ torch.tensor([[2.0, 1.5, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    deg = (10 * x[:, 1] - 7.5 * x[:, 0] + 0.01 * torch.randn(5000, generator=g)).numpy()  # pose = 20 * the 2nd source
    f = pose_filter(x, deg, ridge=0.0)
    truth = torch.tensor([-7.5, 10.0, 0, 0], dtype=torch.float64)
    assert float(f @ truth / truth.norm()) > 0.999
    pattern = covariance_direction(x, torch.from_numpy(deg)).double()
    assert float(f @ pattern) < 0.9  # here the pattern is not the filter
    deg[:7] = np.nan  # faces without a pose are left out
    assert float(pose_filter(x, deg, ridge=0.0) @ f) > 0.999


def test_face_motions_are_learnt_after_the_head_pose_they_are_kept_apart_from():
    assert apart_from_all(["mouth_open"]) == ("yaw", "pitch", "smile", "mouth_open")
    order = apart_from_all(MOTION_NAMES)
    assert sorted(order) == sorted(MOTION_NAMES)
    assert order.index("pitch") < order.index("smile") < order.index("mouth_open") < order.index("eyes")


def _ladder(own_per_unit: float, age_per_unit: float, cos_per_unit: float, prob: bool = False) -> dict[float, dict]:
    out = {}
    for a in (0.25, 0.5, 1.0, 1.5, 2.0, 3.0):
        e = {"own_change": own_per_unit * a, "age_years_change": age_per_unit * a, "female_prob_change": 0.0,
             "identity_cosine": 1 - cos_per_unit * a}
        if prob:
            e.update({"own_mean_from_below_0.3": 0.1 + own_per_unit * a, "own_change_from_below_0.3": own_per_unit * a})
        out[a] = e
    return out


def test_motion_amount_reaches_the_target_unless_side_effects_come_first():
    assert choose_amount("yaw", _ladder(20.0, 0.5, 0.1), 0.2) == {"amount": 0.75, "reason": "reaches the target", "target_share": 1.0}
    aged = choose_amount("yaw", _ladder(10.0, 4.0, 0.1), 0.2)  # 3 years of age reached at 0.75 units, before 15 degrees
    assert aged["amount"] == 0.75 and aged["target_share"] == 0.5 and "limits" in aged["reason"]
    smile = choose_amount("smile", _ladder(0.4, 0.0, 0.1, prob=True), 0.2)  # from 0.1 to 0.75 at 0.4 per unit
    assert smile["amount"] == pytest.approx(1.62, abs=0.011)
    weak = choose_amount("pitch", _ladder(1.0, 0.0, 0.0), 0.2)
    assert weak["amount"] == 3.0 and weak["target_share"] == pytest.approx(0.3) and "not reached" in weak["reason"]


FEATURES = {  # image statistics the planted labellers read: (N, 3, R, R) in [-1, 1] -> (N,)
    "smile": lambda x: x[:, 0, x.shape[-2] // 2 :].mean((1, 2)),  # red in the lower half
    "mouth_open": lambda x: x[:, 1, x.shape[-2] // 2 :].mean((1, 2)),  # green in the lower half
    "eyes": lambda x: x[:, 2, : x.shape[-2] // 2].mean((1, 2)),  # blue in the upper half
    "age": lambda x: x.mean((1, 2, 3)),
    "female": lambda x: x[:, :, :, : x.shape[-1] // 4].mean((1, 2, 3)),  # the left quarter
    "yaw": lambda x: (x[..., 0, :, :] - x[..., 2, :, :]).mean((-1, -2)),
    "pitch": lambda x: x[..., :, : x.shape[-2] // 2, :].mean((-1, -2, -3)) - x[..., :, x.shape[-2] // 2 :, :].mean((-1, -2, -3)),
}


class Planted:
    """Stand-ins for the CelebA classifier, the age / gender classifier, MTCNN (posing a face by the image) and the
    identity judge, with known rules: each measure is a standardised image statistic of FEATURES (standardised on
    the model's own samples, as a tiny random generator varies little)."""
    sha256 = "planted"
    card = {"heldout_verification": {"eer_threshold": 0.2, "same_person_cosine": {"mean": 0.4}}}

    def __init__(self, samples: torch.Tensor):
        self.stats = {k: (f(samples).mean(), f(samples).std()) for k, f in FEATURES.items()}

    def z(self, name, x):
        m, s = self.stats[name]
        return (FEATURES[name](x) - m) / s

    def predict(self, images, recipe):
        out = {"Smiling": torch.sigmoid(2 * self.z("smile", images) - 1), "Eyeglasses": torch.zeros(len(images)),
               "Mouth_Slightly_Open": torch.sigmoid(2 * self.z("mouth_open", images) - 1),
               "Narrow_Eyes": torch.sigmoid(2 * self.z("eyes", images) - 1)}
        return {**out, "age": 40 + self.z("age", images), "female": torch.sigmoid(self.z("female", images))}

    def __call__(self, a, b=None, recipe=None):
        if b is not None:  # the judge
            return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1))
        out = []  # the detector: a batch of framed (H, W, 3) uint8 images
        for img in a:
            h = img.shape[0]
            inner = torch.from_numpy(img[h // 5 : h - h // 5, h // 5 : h - h // 5]).permute(2, 0, 1).float() / 127.5 - 1
            angles = [[10 * float(self.z("yaw", inner)), 5 * float(self.z("pitch", inner)), 0.0]]
            lm = project(np.array(angles), scale=h * 0.2, offset=(h / 2, h / 2))
            out.append(Faces(np.array([[0, 0, 1, 1]], np.float32), np.array([0.99], np.float32), lm.astype(np.float32)))
        return out


def test_motion_directions_on_a_tiny_model_keep_the_contract(tmp_path):
    from dgf_core.faces.edits import _render, sample_latents

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    write_tiny_directions(tmp_path / "tiny")
    dirs = load_directions(model)
    planted = Planted(_render(model.generator, sample_latents(model.generator, "z", 400, 9, 16), "z"))
    res = compute_motion_directions(model, planted, planted, planted, dirs["age"], dirs["gender"], n=400, n_eval=60,
                                    detector=planted)
    assert set(res["directions"]) | set(res["dropped"]) == set(MOTION_NAMES)
    assert "smile" in res["directions"] and len(res["directions"]) >= 2, res["dropped"]
    assert all("target" in d["reason"] for d in res["dropped"].values())
    for name, e in res["directions"].items():
        assert len(e["vector"]) == 16 and isinstance(e["motion_amount"], float) and 0 < e["motion_amount"] <= 3.0
        own_key = next(k for k in e["effects"] if k.startswith(name))
        assert set(e["effects"]) == {own_key, "age_years", "female_prob", "identity_cosine"}
        assert "orthogonal to age, gender" in e["method"] and e["effects"]["identity_cosine"] < 1.0
        assert e["effects"][own_key] > 0, (name, e["effects"])  # a positive amount moves the named way
        v = torch.tensor(e["vector"])
        assert abs(float(v @ dirs["age"])) < 1e-4 * float(v.norm() * dirs["age"].norm())
        at = e["measured"]["+1"]
        assert abs(at["age_years_change"]) < 3 and abs(at["female_prob_change"]) < 0.1  # kept inside the limits
    # an edit along a stored motion is an ordinary edit
    table = json.loads((tmp_path / "tiny" / "directions.json").read_text())
    table["directions"].update(res["directions"])
    (tmp_path / "tiny" / "directions.json").write_text(json.dumps(table))
    loaded = load_directions(model)
    assert {"age", "gender"} <= set(loaded) and set(res["directions"]) <= set(loaded)
    name = next(iter(res["directions"]))
    z = torch.zeros(1, 16)
    assert torch.allclose(apply_edits(z, "z", loaded, {name: 1.0})[0], torch.tensor(res["directions"][name]["vector"]))


def test_compute_directions_script_refuses_unknown_motions(tmp_path, monkeypatch, capsys):
    path = Path(__file__).resolve().parent.parent / "scripts" / "compute_directions.py"
    spec = importlib.util.spec_from_file_location("script_compute_directions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["compute_directions.py", "--model", str(tmp_path), "--motions", "smile,wink"])
    with pytest.raises(SystemExit, match="unknown motions \\['wink'\\]; known: smile, mouth_open, eyes, yaw, pitch"):
        module.main()


def test_compute_directions_script_adds_motions_and_keeps_age_gender(tmp_path, monkeypatch):
    """Two --motions runs (head pose, then smile) each add their entries; age / gender stay as they were; a dropped
    motion is recorded with its reason and leaves no entry."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "compute_directions.py"
    spec = importlib.util.spec_from_file_location("script_compute_directions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = make_tiny_dcgan(tmp_path / "tiny")
    before = json.loads(write_tiny_directions(folder).read_text())["directions"]
    import dgf_core.faces.likeness as likeness
    import dgf_core.faces.motion_directions as md

    def fake_compute(model, celeba, utk, judge, age, gender, *, names, **kw):
        assert (celeba is None) == (set(names) <= {"yaw", "pitch"})  # head pose needs no CelebA classifier
        entry = lambda k: {"vector": [0.1 * len(k)] * 16, "motion_amount": 1.5, "effects": {f"{k}_x": 1.0}, "method": "m"}  # noqa: E731
        return {"directions": {k: entry(k) for k in names if k != "pitch"}, "identity_floor": 0.2,
                "dropped": {k: {"reason": "too weak"} for k in names if k == "pitch"}, "learning": {}, "evaluation": {}}

    monkeypatch.setattr(md, "compute_motion_directions", fake_compute)
    fresh = {"own_change": 1.0, "age_years_change": 0.5, "female_prob_change": 0.02, "identity_cosine": 0.6}
    monkeypatch.setattr(md, "verify_motion", lambda model, entry, name, *a, **kw: {**fresh, "amount": entry["motion_amount"]})
    monkeypatch.setattr(module, "load_classifier", lambda folder: SimpleNamespace(sha256=f"sha of {folder}"))
    monkeypatch.setattr(likeness, "load_likeness", lambda folder: SimpleNamespace(sha256="judge sha"))
    for motions in ("yaw,pitch", "smile,eyes", "mouth_open,eyes"):
        if motions == "mouth_open,eyes":  # fine where they were chosen, not on fresh samples: dropped
            fresh["female_prob_change"] = -0.2
        monkeypatch.setattr(sys, "argv", ["compute_directions.py", "--model", str(folder), "--motions", motions])
        module.main()
    table = json.loads((folder / "directions.json").read_text())
    assert table["format"] == "dgf-directions/1" and {k: table["directions"][k] for k in ("age", "gender")} == before
    assert set(table["directions"]) == {"age", "gender", "yaw", "smile"} and table["directions"]["smile"]["motion_amount"] == 1.5
    info = table["motions"]
    assert info["kept"] == ["smile", "yaw"] and info["dropped"]["pitch"] == {"reason": "too weak"}
    assert "female_prob changed by -0.2 (limit 0.1)" in info["dropped"]["mouth_open"]["reason"]
    assert "female_prob" in info["dropped"]["eyes"]["reason"]  # redone by the last run
    assert [r["motions"] for r in info["runs"]] == [["yaw", "pitch"], ["smile"], ["mouth_open", "eyes"]]
    assert info["runs"][0]["celeba_classifier_sha256"] is None and info["runs"][1]["celeba_classifier_sha256"]
    assert set(load_directions(load_model(folder))) == {"age", "gender", "yaw", "smile"}
    assert set(info["at_motion_amount_fresh_samples"]) == {"yaw", "smile", "mouth_open", "eyes"}


SHIPPED = Path(__file__).resolve().parent.parent / "weights"


@pytest.mark.parametrize("model_name", ["stylegan2-celeba64", "dcgan-celeba64"])
def test_shipped_directions_keep_the_contract(model_name):
    """The shipped directions.json: age / gender as before, each kept motion with its vector in the model's space,
    a signed motion_amount inside the edit range whose fresh-sample check moved the named way inside the limits,
    its per-unit effects and method; every motion is either kept or recorded as dropped."""
    model = load_model(SHIPPED / model_name)
    table = json.loads((SHIPPED / model_name / "directions.json").read_text())
    dirs = load_directions(model)
    assert {"age", "gender"} <= set(dirs) and table["format"] == "dgf-directions/1"
    info = table["motions"]
    motions = [k for k in table["directions"] if k not in ("age", "gender")]
    assert set(motions) <= set(MOTION_NAMES) and sorted(motions) == info["kept"]
    assert not set(motions) & set(info["dropped"])
    for name in motions:
        e = table["directions"][name]
        assert dirs[name].shape == dirs["age"].shape and 0 < abs(e["motion_amount"]) <= 3.0, name
        assert {"age_years", "female_prob", "identity_cosine"} < set(e["effects"]) and e["method"]
        check = info["at_motion_amount_fresh_samples"][name]
        assert check["own_change"] > 0 and abs(check["age_years_change"]) <= 3.5 and abs(check["female_prob_change"]) <= 0.15
        assert check["identity_cosine"] > 0.195  # the judge's same-person threshold


def test_shipped_celeba_classifier_card():
    clf = load_classifier(SHIPPED / "attributes-celeba")
    card = clf.card
    assert {"Smiling", "Mouth_Slightly_Open", "Narrow_Eyes"} <= set(clf.net.cfg.labels)
    assert "non-commercial" in card["licence"] and card["heldout"]["n"] > 100
    for label in clf.net.cfg.labels:
        assert card["heldout"][label]["roc_auc"] > 0.6, label
    assert card["heldout"]["Smiling"]["accuracy"] > card["heldout"]["Smiling"]["majority_accuracy"]


def test_attribute_net_stages_set_the_depth_and_the_resolution_rule():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    three = AttributeNet(AttributeConfig(resolution=32, channels=4))
    assert "features.17.weight" not in three.state_dict() and three.state_dict()["features.15.weight"].shape[0] == 16
    four = AttributeNet(AttributeConfig(resolution=32, channels=4, stages=4))
    assert four.state_dict()["features.21.weight"].shape[0] == 32 and four(x).shape == (2, 2)
    assert four.head[1].in_features == 32
    with pytest.raises(ValueError, match="multiple of 16"):
        AttributeConfig(resolution=24, stages=4)
    with pytest.raises(ValueError, match="stages must be positive"):
        AttributeConfig(stages=0)
