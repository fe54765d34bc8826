"""evaluate_model's coverage (attribute profiles) and two-sample tests, on tiny models and folders made here."""
import pytest
import torch
from conftest import make_image_folder, make_tiny_dcgan

from dgf_core.evaluation.metrics import (
    AGE_BINS,
    C2ST_MIN_PER_CLASS,
    FEMALE_GAP_TARGET,
    age_bin_labels,
    attribute_coverage,
    attribute_profile,
    evaluate_model,
    sample_coverage,
    two_sample_tests,
)


class FixedClassifier:
    """Stands in for edits.AttributeClassifier: ages and p(female) given per image, read from pixel (0, 0, 0)."""

    def __init__(self, ages, female):
        self.ages, self.female = torch.tensor(ages), torch.tensor(female)

    def predict(self, images, recipe):
        assert images.dtype == torch.float32 and images.min() >= -1 and recipe == "celeba-center-crop"
        idx = ((images[:, 0, 0, 0] + 1) * 127.5).round().long()  # each image carries its index in one pixel
        return {"age": self.ages[idx], "female": self.female[idx]}


def indexed_images(idx) -> torch.Tensor:
    x = torch.zeros(len(idx), 3, 8, 8, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.tensor(idx, dtype=torch.uint8)
    return x


def test_age_bins_and_female_share():
    ages = [5.0, 19.99, 20.0, 35.0, 61.0, 80.0]
    clf = FixedClassifier(ages, [0.9, 0.1, 0.6, 0.4, 0.51, 0.2])
    p = attribute_profile(indexed_images(range(6)), clf, "celeba-center-crop", chunk=4)  # chunks of 4 and 2
    assert age_bin_labels() == ["0-19", "20-29", "30-39", "40-49", "50-59", "60+"] and len(AGE_BINS) == 6
    assert p["n"] == 6 and p["female_share"] == 0.5 and p["mean_p_female"] == pytest.approx(2.71 / 6, abs=1e-4)
    assert p["age_shares"] == {"0-19": round(2 / 6, 4), "20-29": round(1 / 6, 4), "30-39": round(1 / 6, 4),
                               "40-49": 0.0, "50-59": 0.0, "60+": round(2 / 6, 4)}
    assert p["age_median"] == pytest.approx(20.0) and p["age_mean"] == pytest.approx(sum(ages) / 6, abs=0.01)


def test_coverage_gap():
    clf = FixedClassifier([30.0] * 4 + [50.0] * 4, [0.9] * 4 + [0.1] * 4)  # images 0-3: women of 30, 4-7: men of 50
    cov = attribute_coverage(indexed_images([0, 0, 0, 4]), indexed_images([0, 4, 5, 6]), clf, "celeba-center-crop")
    assert cov["samples"]["female_share"] == 0.75 and cov["training"]["female_share"] == 0.25
    assert cov["female_share_gap"] == 0.5 and not cov["within_target"] and cov["female_share_gap_target"] == FEMALE_GAP_TARGET
    assert cov["age_mean_gap_years"] == pytest.approx(35.0 - 45.0)
    assert cov["under_20_share_gap"] == 0.0 and cov["aged_50_plus_share_gap"] == pytest.approx(0.25 - 0.75)


def test_coverage_without_a_classifier_is_skipped_with_the_reason(tmp_path):
    x = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    cov = sample_coverage(x, x, tmp_path / "no-classifier", "celeba-center-crop", say=lambda m: None)
    assert set(cov) == {"skipped"} and "no attribute classifier" in cov["skipped"] and "no-classifier" in cov["skipped"]


def test_two_sample_tests_need_enough_images():
    x = torch.zeros(C2ST_MIN_PER_CLASS - 1, 3, 16, 16, dtype=torch.uint8)
    res = two_sample_tests(x, x, x, say=lambda m: None)
    assert set(res) == {"skipped"} and "too few images" in res["skipped"]


def test_evaluate_model_with_c2st_and_coverage(tmp_path):
    from dgf_core.faces.edits import save_classifier
    from dgf_core.models.attributes import AttributeConfig, AttributeNet

    make_tiny_dcgan(tmp_path / "tiny")
    make_image_folder(tmp_path / "real", 360)  # 13 of these names are held out (crc32 % 20 == 0)
    torch.manual_seed(0)
    save_classifier(tmp_path / "clf", AttributeNet(AttributeConfig(resolution=16, channels=4)).eval(), {"heldout": {"n": 1}})
    res = evaluate_model(tmp_path / "tiny", [tmp_path / "real"], n=16, device="cpu", progress=False,
                         attribute_classifier=tmp_path / "clf")
    n_heldout, n_train = res["n_heldout_real"], res["memorization"]["n_train"]
    assert n_heldout == 13 and n_train == 347
    c2st = res["c2st"]
    for key in ("samples_vs_heldout", "real_vs_real"):
        r = c2st[key]
        assert r["n_per_class"] == 13 and 0.0 <= r["accuracy"] <= 1.0 and len(r["fold_accuracies"]) == 5
        assert r["stderr"] >= 0 and 0.0 <= r["p_value"] <= 1.0
    cov = res["coverage"]
    assert cov["samples"]["n"] == 16 and cov["training"]["n"] == n_train and cov["recipe"] == "celeba-center-crop"
    for side in ("samples", "training"):
        assert sum(cov[side]["age_shares"].values()) == pytest.approx(1.0, abs=1e-3)
        assert 0.0 <= cov[side]["female_share"] <= 1.0 and cov[side]["age_mean"] > 0
    assert cov["female_share_gap"] == pytest.approx(cov["samples"]["female_share"] - cov["training"]["female_share"], abs=1e-4)
    assert cov["classifier"] == "clf" and len(cov["classifier_sha256"]) == 64 and cov["classifier_heldout"] == {"n": 1}


def test_c2st_repeats_use_fresh_samples_and_pool(tmp_path):
    make_tiny_dcgan(tmp_path / "tiny")
    make_image_folder(tmp_path / "real", 360)  # 13 held out
    kw = dict(n=16, device="cpu", progress=False, coverage=False)
    one = evaluate_model(tmp_path / "tiny", [tmp_path / "real"], **kw)
    three = evaluate_model(tmp_path / "tiny", [tmp_path / "real"], c2st_repeats=3, **kw)
    single, pooled = one["c2st"]["samples_vs_heldout"], three["c2st"]["samples_vs_heldout"]
    assert pooled["repeats"][0]["accuracy"] == single["accuracy"]  # repeat 1 is the one-test evaluation, exactly
    assert len(pooled["repeats"]) == 3 and len(pooled["fold_accuracies"]) == 15
    assert pooled["accuracy"] == pytest.approx(sum(r["accuracy"] for r in pooled["repeats"]) / 3)
    assert three["c2st"]["sample_seeds"] == "0-47" and one["c2st"]["sample_seeds"] == "0-15"
    untimed = lambda r: {k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds")}  # noqa: E731
    assert untimed(three["c2st"]["real_vs_real"]) == untimed(one["c2st"]["real_vs_real"])  # the floor is not repeated
    assert three["face_detection"] == one["face_detection"] and three["seeds"] == "0-15"  # other metrics: the first set
    with pytest.raises(ValueError, match="c2st_repeats"):
        evaluate_model(tmp_path / "tiny", [tmp_path / "real"], c2st_repeats=0, **kw)


def test_c2st_also_at_a_lower_resolution_downsamples_both_sides(tmp_path, monkeypatch):
    import dgf_core.evaluation.metrics as metrics

    make_tiny_dcgan(tmp_path / "tiny")
    make_image_folder(tmp_path / "real", 360)
    seen = []
    real_tests = metrics.two_sample_tests

    def spy(sets, heldout, train, device, say):
        seen.append((tuple(sets[0].shape), tuple(heldout.shape), tuple(train.shape)))
        return real_tests(sets, heldout, train, device, say)

    monkeypatch.setattr(metrics, "two_sample_tests", spy)
    res = evaluate_model(tmp_path / "tiny", [tmp_path / "real"], n=16, device="cpu", progress=False, coverage=False,
                         c2st_also_at=[8])
    assert seen == [((16, 3, 16, 16), (13, 3, 16, 16), (347, 3, 16, 16)), ((16, 3, 8, 8), (13, 3, 8, 8), (347, 3, 8, 8))]
    assert res["c2st_at"]["8"]["samples_vs_heldout"]["n_per_class"] == 13
    with pytest.raises(ValueError, match="c2st_also_at"):
        evaluate_model(tmp_path / "tiny", [tmp_path / "real"], n=16, device="cpu", progress=False, c2st_also_at=[16])
    x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4).expand(1, 3, 4, 4)
    assert metrics.downsample(x, 2)[0, 0].tolist() == [[2, 4], [10, 12]]  # 2x2 means (2.5 rounds to even: 2)
