"""`data align`: a face set aligned by landmarks (faces/aligned_set.py), with the real MTCNN on the test scene."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgf_core.data import list_images, load_image_set
from dgf_core.faces.aligned_set import MANIFEST, AlignJob, align_sources, read_manifest

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "tests" / "data" / "mtcnn-scene.png"


@pytest.fixture
def sources(tmp_path):
    """Two folders: face crops of the test scene (one with a UTKFace name), a photo without a face, a corrupt file."""
    with Image.open(SCENE) as im:
        scene = im.convert("RGB")
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    scene.save(a / "000001.jpg", quality=95)
    scene.crop((0, 20, 140, 170)).save(a / "000002.jpg", quality=95)
    scene.crop((10, 30, 120, 160)).save(b / "71_1_0_20170110160000000.jpg.chip.jpg", quality=95)
    Image.fromarray(np.full((120, 120, 3), 90, np.uint8)).save(b / "plain.png")
    (b / "broken.jpg").write_bytes(b"not a jpeg")
    return [a, b]


def test_align_writes_faces_under_their_names_with_a_manifest(sources, tmp_path):
    out = tmp_path / "set"
    seen = []
    summary = align_sources(sources, out, AlignJob("utkface-chip", 32, max_outside=0.5),
                            progress=lambda done, total, counts: seen.append((done, total)))
    recs = read_manifest(out)
    assert {n: r["status"] for n, r in recs.items()} == {
        "000001.jpg": "ok", "000002.jpg": "ok", "71_1_0_20170110160000000.jpg.chip.jpg": "ok",
        "plain.png": "no-face", "broken.jpg": "unreadable"}
    assert recs["71_1_0_20170110160000000.jpg.chip.jpg"]["age"] == 71 and recs["000001.jpg"].get("age") is None
    assert seen[-1] == (5, 5) and summary["kept"] == 3 and summary["by_status"]["no-face"] == 1
    files = list_images(out)
    assert sorted(p.name for p in files) == ["000001.jpg", "000002.jpg", "71_1_0_20170110160000000.jpg.chip.jpg"]
    faces = load_image_set(out, 32, "all")
    assert faces.images.shape == (3, 3, 32, 32)
    # the same face from the wide scene and from a closer crop: aligned to nearly the same pixels
    diff = (faces.images[0].float() - faces.images[1].float()).abs()[:, 8:24, 8:24].mean()
    assert diff < 12
    assert json.loads((out / "summary.json").read_text())["recipe"] == "utkface-chip"


def test_align_resumes_and_refuses_to_mix(sources, tmp_path):
    out = tmp_path / "set"
    job = AlignJob("utkface-chip", 32, max_outside=0.5)
    align_sources(sources, out, job, limit=2)
    assert len(read_manifest(out)) == 2
    with (out / MANIFEST).open("a") as f:
        f.write('{"name": "torn')  # a record cut by a kill
    (out / "images" / "x.jpg.tmp.jpg").write_bytes(b"half")  # an image being written at the kill
    calls = []
    align_sources(sources, out, job, progress=lambda *a: calls.append(a))
    assert len(calls) == 3 and len(read_manifest(out)) == 5  # only the three new files were aligned
    assert not list((out / "images").glob("*.tmp.jpg"))
    with pytest.raises(ValueError, match="another --out"):
        align_sources(sources, out, AlignJob("utkface-chip", 64))
    with pytest.raises(ValueError, match="recipe"):
        align_sources(sources, tmp_path / "other", AlignJob("no-such-recipe", 32))


def test_padding_beyond_the_limit_leaves_a_face_out(tmp_path):
    (tmp_path / "src").mkdir()
    with Image.open(SCENE) as im:
        im.convert("RGB").crop((36, 58, 92, 130)).save(tmp_path / "src" / "tight.jpg", quality=95)  # the face only
    out = align_sources([tmp_path / "src"], tmp_path / "loose", AlignJob("utkface-chip", 32, max_outside=0.5))
    (rec,) = read_manifest(tmp_path / "loose").values()
    assert rec["status"] == "ok" and 0.02 < rec["outside"] < 0.5 and out["kept"] == 1
    out = align_sources([tmp_path / "src"], tmp_path / "strict", AlignJob("utkface-chip", 32, max_outside=0.01))
    (rec,) = read_manifest(tmp_path / "strict").values()
    assert rec["status"] == "padded" and out["kept"] == 0 and not list((tmp_path / "strict" / "images").iterdir())


def test_repeated_file_names_across_sources_are_refused(sources, tmp_path):
    (sources[1] / "000001.jpg").write_bytes((sources[0] / "000001.jpg").read_bytes())
    with pytest.raises(ValueError, match="repeat"):
        align_sources(sources, tmp_path / "set", AlignJob("utkface-chip", 32))


def test_cli_data_align(sources, tmp_path, capsys):
    """The dry run and the refusal in-process (dgf_core.cli.main); the real run through `python -m dgf_core`."""
    from dgf_core.cli import main

    out = tmp_path / "set"
    args = ["data", "align", str(sources[0]), "--out", str(out), "--resolution", "32", "--no-progress"]
    assert main(args + ["--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["align"]["files"] == 2 and not out.exists()
    run = subprocess.run([sys.executable, "-m", "dgf_core", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    config, end = json.JSONDecoder().raw_decode(run.stdout)  # the resolved configuration, then the summary
    assert config["align"]["files"] == 2 and json.loads(run.stdout[end:])["kept"] == 2
    assert main(args[:-3] + ["--resolution", "8"]) == 2  # too small for the recipe: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--resolution" in err
