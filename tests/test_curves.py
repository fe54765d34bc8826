"""Learning curves from training run folders (log.jsonl written by the test; no training)."""
import json

import numpy as np
import pytest
from PIL import Image

from dgf_core.cli import main
from dgf_core.evaluation.curves import (
    check_runs,
    curves_json,
    eval_series,
    parse_size,
    plot_curves,
    read_run,
    runs_from_json,
)


def write_log(folder, records, extra_lines=()):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    (folder / "log.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def ev(step, rate, cpu, **extra):
    return {"kind": "eval", "step": step, "images_seen": step * 32, "cpu_seconds": cpu,
            "face_rate": {"p>=0.9": min(1.0, rate + 0.3), "p>=0.99": rate + 0.1, "p>=0.999": rate}, "n_seeds": 256,
            "time": "2026-12-02T06:00:00+00:00", **extra}


def st(step, d_loss):
    return {"step": step, "images_seen": step * 32, "epoch": 0, "d_loss": d_loss, "g_loss": 1.0, "images_per_s": 38.7}


@pytest.fixture
def resumed_run(tmp_path):
    """A StyleGAN2 run that crashed after step 3000's eval and resumed from its step-2000 checkpoint; a separate
    evaluation later added C2ST for steps 2000 and 4000."""
    return write_log(tmp_path / "sg2-a", [
        {"kind": "start", "family": "stylegan2", "step": 0, "images_seen": 0, "options": {}, "config": {}},
        st(1000, 0.9), ev(1000, 0.10, 1800.0),
        st(2000, 0.8), ev(2000, 0.20, 3600.0),
        st(3000, 0.7), ev(3000, 0.33, 5400.0),  # lost with the crash: repeated after the resume
        {"kind": "start", "family": "stylegan2", "step": 2000, "images_seen": 64000, "options": {}, "config": {}},
        st(3000, 0.6), ev(3000, 0.30, 7200.0),
        st(4000, 0.5), ev(4000, 0.41, 9000.0),
        {"kind": "eval", "step": 2000, "images_seen": 64000, "c2st": {"accuracy": 0.97, "stderr": 0.01}},
        {"kind": "eval", "step": 4000, "images_seen": 128000, "c2st": {"accuracy": 0.93, "stderr": 0.02}},
    ], extra_lines=['{"step": 4050, "images_se'])  # the last line, cut short by a kill


@pytest.fixture
def plain_run(tmp_path):
    return write_log(tmp_path / "dcgan-b", [st(500, 1.2), ev(500, 0.05, 900.0), ev(1000, 0.15, 1800.0)])


def test_read_run_keeps_the_last_record_per_step(resumed_run):
    run = read_run(resumed_run)
    assert run.name == "sg2-a" and run.family == "stylegan2" and run.label == "sg2-a (stylegan2)"
    assert [r["step"] for r in run.steps] == [1000, 2000, 3000, 4000]
    assert [r["d_loss"] for r in run.steps] == [0.9, 0.8, 0.6, 0.5]  # step 3000 from after the resume
    assert [r["step"] for r in run.evals] == [1000, 2000, 3000, 4000]
    assert len(run.starts) == 2 and run.skipped_lines == 1


def test_eval_series_values(resumed_run):
    cols = eval_series(read_run(resumed_run))
    assert cols["step"] == [1000, 2000, 3000, 4000]
    assert cols["images_seen"] == [32000, 64000, 96000, 128000]
    assert cols["face_rate"] == [0.10, 0.20, 0.30, 0.41]
    assert cols["cpu_hours"] == [0.5, 1.0, 2.0, 2.5]  # cumulative cpu_seconds / 3600; 3000's from the resumed session
    assert cols["c2st"] == [None, 0.97, None, 0.93]  # the C2ST lines join the trainer's records of their steps
    assert cols["c2st_stderr"] == [None, 0.01, None, 0.02]
    assert eval_series(read_run(resumed_run), face_key="p>=0.9")["face_rate"] == [0.4, 0.5, 0.6, 0.71]


def test_a_continued_run_starts_where_its_weights_were(tmp_path):
    # the first eval was written before the trainer kept totals, the second after a resume that does
    run = write_log(tmp_path / "cont", [ev(1000, 0.6, 1800.0),
                                        ev(2000, 0.65, 3600.0, images_seen_total=129536 + 64000, cpu_seconds_total=3700.0)])
    cols = eval_series(read_run(run))
    assert cols["images_seen"] == [129536 + 32000, 129536 + 64000]
    assert cols["cpu_hours"] == [1900.0 / 3600, 3700.0 / 3600]


def test_family_falls_back_to_the_exported_model(plain_run):
    assert read_run(plain_run).family is None
    (plain_run / "model").mkdir()
    (plain_run / "model" / "config.json").write_text(json.dumps({"format": 1, "family": "dcgan", "config": {}}))
    assert read_run(plain_run).label == "dcgan-b (dcgan)"


def test_plot_writes_a_png_of_the_requested_size(resumed_run, plain_run, tmp_path):
    runs = [read_run(resumed_run), read_run(plain_run)]
    out = plot_curves(runs, tmp_path / "figs" / "curves.png", real_rate=0.813, size=(900, 320))
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (900, 320)
    pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
    assert ((pixels == (31, 119, 180)).all(1)).sum() > 50  # the first run's line (matplotlib C0) is drawn
    assert ((pixels == (255, 127, 14)).all(1)).sum() > 50  # and the second's (C1)
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.png"]  # no temporary file left behind


def test_c2st_panel_only_when_a_run_has_it(resumed_run, plain_run, tmp_path):
    from dgf_core.evaluation.curves import panels

    assert panels([read_run(plain_run)]) == ["face_rate_images", "face_rate_cpu"]
    assert panels([read_run(plain_run), read_run(resumed_run)])[-1] == "c2st_images"
    assert Image.open(plot_curves([read_run(plain_run)], tmp_path / "a.png")).size == (900, 400)  # 2 default panels
    assert Image.open(plot_curves([read_run(resumed_run)], tmp_path / "b.png")).size == (1350, 400)


def test_c2st_points_of_different_test_sizes_are_separate_lines(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from dgf_core.evaluation.curves import _c2st_groups

    c = lambda acc, n: {"accuracy": acc, "stderr": 0.01, "n_per_class": n}  # noqa: E731
    run = write_log(tmp_path / "sg2", [ev(1000, 0.5, 900.0, c2st=c(0.60, 256)), ev(2000, 0.6, 1800.0, c2st=c(0.62, 256)),
                                       ev(3000, 0.7, 2700.0, c2st=c(0.90, 765)),
                                       {"kind": "eval", "step": 2000, "images_seen": 64000, "c2st": c(0.91, 765)}])
    cols = eval_series(read_run(run))
    assert cols["c2st"] == [0.60, 0.91, 0.90] and cols["c2st_n"] == [256, 765, 765]  # a later, larger test wins
    assert _c2st_groups([cols]) == [765, 256]
    drawn = []
    plot = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda ax, *a, **kw: drawn.append((kw.get("label"), list(a[1]))) or plot(ax, *a, **kw))
    plot_curves([read_run(run)], tmp_path / "c.png")
    assert ("sg2 (765 per class)", [0.91, 0.90]) in drawn and ("sg2 (256 per class)", [0.60]) in drawn
    one_size = write_log(tmp_path / "one", [ev(1000, 0.5, 900.0, c2st=c(0.9, 765))])
    drawn.clear()
    plot_curves([read_run(one_size)], tmp_path / "d.png")
    assert ("one", [0.9]) in drawn  # one size: no size in the label


def test_coverage_panel_draws_the_female_share_beside_the_training_faces(plain_run, tmp_path):
    from dgf_core.evaluation.curves import panels

    cov = lambda share: {"coverage": {"female_share": share, "n": 256, "training_female_share": 0.63, "training_n": 2000}}
    run = write_log(tmp_path / "cov", [ev(1000, 0.5, 1800.0, **cov(0.80)), ev(2000, 0.6, 3600.0),  # no coverage
                                       ev(3000, 0.7, 5400.0, **cov(0.70))])
    cols = eval_series(read_run(run))
    assert cols["female_share"] == [0.80, None, 0.70] and cols["training_female_share"] == [0.63, None, 0.63]
    assert cols["female_share_stderr"][0] == pytest.approx((0.8 * 0.2 / 256) ** 0.5) and cols["female_share_stderr"][1] is None
    assert panels([read_run(run)]) == ["face_rate_images", "face_rate_cpu", "female_share_images"]
    assert panels([read_run(plain_run)]) == ["face_rate_images", "face_rate_cpu"]  # old logs: no panel (d)
    img = Image.open(plot_curves([read_run(run), read_run(plain_run)], tmp_path / "d.png"))
    assert img.size == (1350, 400)
    right = np.asarray(img.convert("RGB"))[:, 900:].reshape(-1, 3)  # the third panel: (d)
    assert ((right == (31, 119, 180)).all(1)).sum() > 20  # the run's share is drawn there, in its colour


def test_runs_without_evals(plain_run, tmp_path):
    empty = write_log(tmp_path / "no-evals", [st(50, 1.0), st(100, 0.9)])
    warnings = check_runs([read_run(plain_run), read_run(empty)])
    assert len(warnings) == 1 and "no-evals" in warnings[0] and "no eval records" in warnings[0]
    broken = write_log(tmp_path / "no-mtcnn", [{"kind": "eval", "step": 100, "images_seen": 3200, "cpu_seconds": 60.0,
                                                "face_rate_error": "face detection unavailable: no facenet_pytorch"}])
    (warning,) = check_runs([read_run(broken)])
    assert "no face rate at p>=0.999 (face detection unavailable" in warning
    with pytest.raises(ValueError, match="no eval records"):
        plot_curves([read_run(empty)], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_missing_run_and_log_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_run(tmp_path / "nowhere")
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match="bare has no log.jsonl"):
        read_run(tmp_path / "bare")


@pytest.mark.parametrize("text, size", [("1200x400", (1200, 400)), ("640X480", (640, 480))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["1200", "axb", "50x400", "1200x99999"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_cli_round_trip(resumed_run, plain_run, tmp_path, capsys):
    empty = write_log(tmp_path / "no-evals", [st(50, 1.0)])
    png, js = tmp_path / "docs" / "learning-curves.png", tmp_path / "curves.json"
    assert main(["curves", str(resumed_run), str(plain_run), str(empty), "--out", str(png), "--json", str(js),
                 "--real-rate", "0.813", "--size", "1200x360"]) == 0
    out, err = capsys.readouterr()
    config = json.loads(out[: out.index("\nwrote ")])["curves"]
    assert config["panels"] == ["face_rate_images", "face_rate_cpu", "c2st_images"] and config["size"] == [1200, 360]
    assert [r["eval_records"] for r in config["runs"]] == [4, 2, 0]
    assert "warning: run" in err and "no-evals has no eval records" in err and "unreadable" in err
    assert Image.open(png).size == (1200, 360)
    data = json.loads(js.read_text())
    expected = curves_json([read_run(p) for p in (resumed_run, plain_run, empty)], real_rate=0.813)
    assert data == json.loads(json.dumps(expected))
    a, b, c = data["runs"]
    assert (a["label"], a["restarts"], a["last_step"]) == ("sg2-a (stylegan2)", 1, 4000)
    assert b["eval"]["face_rate"] == [0.05, 0.15] and b["eval"]["cpu_hours"] == [0.25, 0.5]
    assert c["eval"]["step"] == [] and data["real_rate"] == 0.813


def test_cli_dry_run_writes_nothing(plain_run, tmp_path, capsys):
    argv = ["curves", str(plain_run), "--out", str(tmp_path / "c.png"), "--json", str(tmp_path / "c.json"), "--dry-run"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["curves"]["size"] == [900, 400]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dcgan-b"]


@pytest.mark.parametrize("args, message", [
    (["{tmp}/missing"], "run folder does not exist: {tmp}/missing"),
    (["{run}", "{tmp}"], "has no log.jsonl"),
    (["{empty}"], "no eval records"),
    (["{run}", "--out", "{tmp}/c.jpg"], "--out must be a .png"),
    (["{run}", "--real-rate", "81.3"], "--real-rate must be in [0, 1]"),
    (["{run}", "--size", "big"], "size must be WIDTHxHEIGHT"),
])
def test_cli_errors_are_one_clear_line(plain_run, tmp_path, capsys, args, message):
    empty = write_log(tmp_path / "no-evals", [st(50, 1.0)])
    fill = {"tmp": str(tmp_path), "run": str(plain_run), "empty": str(empty)}
    args = [x.format(**fill) for x in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "c.png")]
    assert main(["curves", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(**fill) in err and "Traceback" not in err
    assert not (tmp_path / "c.png").exists()


def test_runs_of_an_earlier_json_are_drawn_again_beside_new_runs(resumed_run, plain_run, tmp_path, capsys):
    """Run folders go with the machine; the committed --json brings their curves back, values unchanged."""
    cov = {"female_share": 0.6, "n": 256, "training_female_share": 0.63}
    cont = write_log(tmp_path / "cont", [ev(1000, 0.6, 1800.0, images_seen_total=1_032_000, cpu_seconds_total=9000.0,
                                            c2st={"accuracy": 0.8, "stderr": 0.01, "n_per_class": 765},
                                            coverage=cov)])
    old = tmp_path / "old.json"
    assert main(["curves", str(resumed_run), str(cont), "--out", str(tmp_path / "a.png"), "--json", str(old)]) == 0
    for r_json, r in zip(runs_from_json(old), (read_run(resumed_run), read_run(cont))):
        assert r_json.name == r.name and r_json.family == r.family
        a, b = eval_series(r_json), eval_series(r)  # lineage offsets and coverage n survive
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k]) for k in a), (a, b)
    png, new = tmp_path / "b.png", tmp_path / "new.json"
    assert main(["curves", str(plain_run), "--from-json", str(old), "--out", str(png), "--json", str(new)]) == 0
    runs = json.loads(new.read_text())["runs"]
    assert [r["name"] for r in runs] == ["sg2-a", "cont", "dcgan-b"]
    assert runs[1]["eval"]["images_seen"] == [1_032_000] and runs[1]["eval"]["c2st_n"] == [765]
    assert Image.open(png).size == (1800, 400)  # four panels: C2ST and coverage came back from the JSON
    capsys.readouterr()
    assert main(["curves", str(resumed_run), "--from-json", str(old), "--out", str(png)]) == 2
    assert "a run is given twice: ['sg2-a']" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"runs": 3}')
    assert main(["curves", "--from-json", str(tmp_path / "bad.json"), "--out", str(png)]) == 2
    assert "bad.json is not a curves --json file" in capsys.readouterr().err
    assert main(["curves", "--out", str(png)]) == 2
    assert "give at least one RUN folder or --from-json FILE" in capsys.readouterr().err
