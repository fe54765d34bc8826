"""Shipping a candidate generator only when `evaluate` shows it measurably better (`python -m dgf_core ship`)."""
import json

import pytest
from conftest import make_image_folder, make_tiny_dcgan

from dgf_core.checkpoint import file_sha256, read_config
from dgf_core.cli import main
from dgf_core.evaluation.promotion import compare, improves

REAL = ["../shared/data/celeba/img_align_celeba"]


def evaluation(face=0.60, c2st=0.99, female=0.90, memo=1.0, n=1000, sha="x", truncation=1.0, real=REAL):
    return {"weights_sha256": sha, "resolution": 64, "n_samples": n, "truncation": truncation, "real_data": list(real),
            "face_detection": {"samples": {"p>=0.999": face}},
            "c2st": {"samples_vs_heldout": {"accuracy": c2st, "stderr": 0.004}},
            "coverage": {"samples": {"n": n, "female_share": female}, "training": {"n": 5000, "female_share": 0.63}},
            "memorization": {"ratio": memo}}


def verdicts(old, new):
    return {c.metric: c.verdict for c in compare(old, new)}


def test_a_metric_counts_only_beyond_twice_its_standard_error():
    old = evaluation()
    # face rate: the s.e. of a difference of two rates near 0.6 over 1000 samples is about 0.022
    assert verdicts(old, evaluation(face=0.65))["face rate (p>=0.999)"] == "better"
    assert verdicts(old, evaluation(face=0.62))["face rate (p>=0.999)"] == "same"
    assert verdicts(old, evaluation(face=0.55))["face rate (p>=0.999)"] == "worse"
    assert verdicts(old, evaluation(c2st=0.97))["C2ST accuracy"] == "better"  # lower is better
    assert verdicts(old, evaluation(c2st=1.00))["C2ST accuracy"] == "same"
    assert verdicts(old, evaluation(female=0.80))["female share gap"] == "better"  # 0.27 -> 0.17
    assert verdicts(old, evaluation(female=0.50))["female share gap"] == "better"  # too few women now, by less
    assert verdicts(old, evaluation(female=0.30))["female share gap"] == "worse"  # 0.27 -> 0.33


def test_c2st_of_the_same_folds_is_judged_by_their_paired_differences():
    """Two 25-fold evaluations on the same seeds: a shift of 0.02 that every fold shows is better, although each
    test's own standard error (0.02) would call it noise; on other sample seeds the pairing does not apply."""
    folds = [0.58 + 0.04 * ((7 * i) % 11) / 10 for i in range(25)]  # spread like real folds

    def pooled(shift, sample_seeds="0-4999"):
        ev = evaluation(c2st=sum(folds) / 25 + shift)
        ev["c2st"]["sample_seeds"] = sample_seeds
        ev["c2st"]["samples_vs_heldout"].update(stderr=0.02, fold_accuracies=[f + shift + 0.001 * (i % 3) for i, f in enumerate(folds)],
                                                n_per_class=765, folds=5, epochs=6, seed=[0, 1, 2, 3, 4])
        return ev

    paired = {c.metric: c for c in compare(pooled(0.0), pooled(-0.02))}["C2ST accuracy"]
    assert paired.verdict == "better" and paired.noise < 0.002 and "paired over 25 folds" in paired.line()
    unpaired = {c.metric: c for c in compare(pooled(0.0), pooled(-0.02, sample_seeds="5000-9999"))}["C2ST accuracy"]
    assert unpaired.verdict == "same" and unpaired.noise == pytest.approx(2 * 0.02 * 2 ** 0.5) and "paired" not in unpaired.line()


def test_the_memorization_ratio_is_a_floor():
    assert verdicts(evaluation(memo=1.1), evaluation(memo=0.95))["memorization ratio"] == "same"
    assert verdicts(evaluation(memo=1.1), evaluation(memo=0.85))["memorization ratio"] == "worse"


def test_ships_only_when_something_is_better_and_nothing_worse():
    old = evaluation()
    assert improves(compare(old, evaluation(face=0.65, c2st=0.986, female=0.85)))
    assert not improves(compare(old, evaluation()))  # all within noise
    assert not improves(compare(old, evaluation(face=0.70, female=0.30)))  # better faces, worse coverage
    assert not improves(compare(old, evaluation(face=0.70, memo=0.5)))
    missing = evaluation(face=0.70)
    del missing["face_detection"]
    assert not improves(compare(old, missing))


def test_evaluations_must_be_comparable():
    with pytest.raises(ValueError, match="truncation"):
        compare(evaluation(), evaluation(truncation=0.7))
    with pytest.raises(ValueError, match="real data"):
        compare(evaluation(), evaluation(real=["elsewhere"]))


@pytest.fixture
def shipped(tmp_path):
    """weights/tiny with an evaluated card, edit directions and a licence; a candidate snapshot beside it."""
    weights = tmp_path / "weights"
    dest = make_tiny_dcgan(weights / "tiny", seed=0)
    meta = read_config(dest)
    meta["card"]["evaluation"] = evaluation(sha=meta["weights_sha256"])
    (dest / "config.json").write_text(json.dumps(meta))
    (dest / "directions.json").write_text("{}")
    (dest / "LICENSE").write_text("licence text")
    cand = make_tiny_dcgan(tmp_path / "run" / "snapshots" / "kimg000064", seed=1)
    return weights, dest, cand


def write_eval(tmp_path, cand, **kw):
    path = tmp_path / "cand-eval.json"
    path.write_text(json.dumps(evaluation(sha=file_sha256(cand / "model.safetensors"), **kw)))
    return path


def ship(weights, cand, *extra):
    return main(["ship", str(cand), "--as", "tiny", "--weights-dir", str(weights), *extra])


def test_ship_replaces_the_folder_with_a_better_candidate(shipped, tmp_path, capsys):
    weights, dest, cand = shipped
    ev = write_eval(tmp_path, cand, face=0.66, c2st=0.985, female=0.85)
    assert ship(weights, cand, "--evaluation", str(ev), "--note", "continued on the CPU") == 0
    out = capsys.readouterr().out
    assert "measurably better" in out and "removed" in out and "directions.json" in out
    assert (dest / "model.safetensors").read_bytes() == (cand / "model.safetensors").read_bytes()
    card = read_config(dest)["card"]
    assert card["evaluation"]["face_detection"]["samples"]["p>=0.999"] == 0.66
    assert card["notes"] == "continued on the CPU" and card["shipped_from"] == str(cand)
    assert not (dest / "directions.json").exists()  # computed from the old weights
    assert (dest / "LICENSE").read_text() == "licence text"
    assert sorted(p.name for p in weights.iterdir()) == ["tiny"]  # no temporary folders left
    assert "status" not in card


def test_ship_with_a_status_and_the_next_ship_drops_it(shipped, tmp_path, capsys):
    weights, dest, cand = shipped
    ev = write_eval(tmp_path, cand, face=0.66)
    assert ship(weights, cand, "--evaluation", str(ev), "--status", "in training") == 0
    assert read_config(dest)["card"]["status"] == "in training"
    assert ship(weights, cand, "--evaluation", str(ev), "--force") == 0  # the same again, now without a status
    assert "status" not in read_config(dest)["card"]


def test_ship_keeps_the_shipped_model_when_the_candidate_is_not_better(shipped, tmp_path, capsys):
    weights, dest, cand = shipped
    before = (dest / "model.safetensors").read_bytes()
    ev = write_eval(tmp_path, cand, face=0.61)
    assert ship(weights, cand, "--evaluation", str(ev)) == 1
    assert "not measurably better" in capsys.readouterr().out
    assert (dest / "model.safetensors").read_bytes() == before and (dest / "directions.json").exists()
    assert ship(weights, cand, "--evaluation", str(ev), "--dry-run", "--force") == 0
    assert (dest / "model.safetensors").read_bytes() == before
    assert ship(weights, cand, "--evaluation", str(ev), "--force") == 0
    assert (dest / "model.safetensors").read_bytes() != before


def test_ship_refuses_an_evaluation_of_other_weights(shipped, tmp_path, capsys):
    weights, dest, cand = shipped
    ev = tmp_path / "other.json"
    ev.write_text(json.dumps(evaluation(sha="0" * 64, face=0.9)))
    assert ship(weights, cand, "--evaluation", str(ev)) == 2
    assert "evaluate the candidate itself" in capsys.readouterr().err
    assert ship(weights, tmp_path / "nothing") == 2


def test_ship_evaluates_the_candidate_like_the_shipped_model(tmp_path, capsys):
    weights = tmp_path / "weights"
    dest = make_tiny_dcgan(weights / "tiny", seed=0)
    make_image_folder(tmp_path / "real", 360)  # 13 of these names are held out
    meta = read_config(dest)
    meta["card"]["evaluation"] = evaluation(n=8, real=[str(tmp_path / "real")], sha=meta["weights_sha256"])
    meta["card"]["evaluation"]["resolution"] = 16
    meta["card"]["evaluation"]["c2st"]["samples_vs_heldout"]["repeats"] = [{"accuracy": 0.99}, {"accuracy": 0.99}]
    (dest / "config.json").write_text(json.dumps(meta))
    cand = make_tiny_dcgan(tmp_path / "cand", seed=1)
    code = ship(weights, cand, "--dry-run", "--device", "cpu")
    out = capsys.readouterr().out
    assert "evaluating" in out and "n 8" in out and "C2ST repeats 2" in out and "face rate (p>=0.999)" in out and "verdict:" in out
    assert code in (0, 1) and read_config(dest)["weights_sha256"] == meta["weights_sha256"]  # dry run: unchanged
