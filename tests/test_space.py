"""`deploy-space`: the dry run lists what a Space gets and refuses what a Space would refuse or break on; the upload
is one commit through huggingface_hub's API (driven here by a stand-in API object: tests never reach the network)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import make_tiny_dcgan

from dgf_core.cli import main
from dgf_core.serving import space

ROOT = Path(__file__).resolve().parent.parent


def make_checkout(root: Path) -> Path:
    """A minimal deployable checkout: app, requirements, core package, one tiny model, the Space card."""
    (root / "dgf_core").mkdir(parents=True)
    (root / "dgf_core" / "__init__.py").write_text("")
    (root / "dgf_core" / "__pycache__").mkdir()
    (root / "dgf_core" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0" * 10)
    (root / "app.py").write_text("print('app')\n")
    (root / "requirements.txt").write_text("torch==2.14.1\ngradio==6.31.0  # the UI\n")
    (root / "space").mkdir()
    shutil.copy(ROOT / space.SPACE_CARD, root / space.SPACE_CARD)
    make_tiny_dcgan(root / "weights" / "tiny-dcgan")
    return root


def test_the_repository_is_ready_for_a_space(capsys):
    """The real checkout: every shipped model folder goes up, the card becomes README.md, nothing is refused."""
    files = space.space_files(ROOT)
    paths = {f.path_in_repo for f in files}
    assert {"README.md", "app.py", "ui/__init__.py", "ui/memory.py", "requirements.txt", "dgf_core/serving/space.py",
            "pages/5_Memory.py"} <= paths
    for model in (ROOT / "weights").iterdir():
        assert f"weights/{model.name}/model.safetensors" in paths
    assert not any("__pycache__" in p or p.startswith(("tests/", "docs/", "scripts/")) for p in paths)
    assert space.check_files(files, ROOT) == []
    assert main(["deploy-space", "someone/deeply-good-fakes", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "weights/dcgan-celeba64/model.safetensors" in out and "ready: nothing uploaded (dry run)" in out


def test_dry_run_lists_sizes_and_marks_large_files(tmp_path, capsys):
    root = make_checkout(tmp_path / "repo")
    (root / "weights" / "tiny-dcgan" / "big.json").write_bytes(b" " * (space.GIT_FILE_LIMIT + 1))
    assert main(["deploy-space", "me/x", "--dry-run", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{space.GIT_FILE_LIMIT + 1:>12,}  weights/tiny-dcgan/big.json  (large file" in out
    assert "x.cpython-311.pyc" not in out and "  README.md" in out


@pytest.mark.parametrize("breakage, expected", [
    ("image", "weights/tiny-dcgan/sample.png: .png files are not part of the app"),
    ("pickle", "weights/tiny-dcgan/old.pt: .pt files are not part of the app"),
    ("symlink", "pages/photos: a symbolic link"),
    ("hidden", "dgf_core/.env: a hidden file"),
    ("sha", "weights/tiny-dcgan/model.safetensors: does not match the sha256"),
    ("sdk_version", "sdk_version '6.31.0' is not requirements.txt's gradio '6.30.0'"),
    ("no_card", "README.md: missing"),
    ("no_config", "weights/tiny-dcgan: needs config.json and model.safetensors"),
])
def test_dry_run_refuses_what_a_space_would_refuse(tmp_path, capsys, breakage, expected):
    root = make_checkout(tmp_path / "repo")
    model = root / "weights" / "tiny-dcgan"
    if breakage == "image":
        (model / "sample.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    elif breakage == "pickle":
        (model / "old.pt").write_bytes(b"\x80\x04")
    elif breakage == "symlink":  # e.g. a link to a data set outside the checkout
        outside = tmp_path / "data"
        outside.mkdir()
        (root / "pages").mkdir()
        os.symlink(outside, root / "pages" / "photos")
    elif breakage == "hidden":
        (root / "dgf_core" / ".env").write_text("TOKEN=x\n")
    elif breakage == "sha":
        data = bytearray((model / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (model / "model.safetensors").write_bytes(bytes(data))
    elif breakage == "sdk_version":
        (root / "requirements.txt").write_text("gradio==6.30.0\n")
    elif breakage == "no_card":
        (root / space.SPACE_CARD).unlink()
    elif breakage == "no_config":
        (model / "config.json").unlink()
    files = space.space_files(root)
    problems = space.check_files(files, root)
    assert any(expected in p for p in problems), problems
    assert main(["deploy-space", "me/x", "--dry-run", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the Space would refuse or break on") and expected in err


def test_repo_id_and_front_matter():
    assert space.check_repo_id("me/deeply-good-fakes") == "me/deeply-good-fakes"
    for bad in ("nameonly", "a/b/c", "me/has space", "", "/x"):
        with pytest.raises(ValueError, match="OWNER/NAME"):
            space.check_repo_id(bad)
    assert space.front_matter("---\nsdk: gradio\nsdk_version: \"6.31.0\"\n---\n# x") == {"sdk": "gradio",
                                                                                       "sdk_version": "6.31.0"}
    assert space.front_matter("---\nsdk: gradio\n") == {}  # no closing fence
    assert space.front_matter("# title\n---\nsdk: gradio\n---") == {}
    assert space.pinned("Torch==2.1  # x\nimageio_ffmpeg==0.8.1\n# pytest==9\n") == {"torch": "2.1",
                                                                                  "imageio-ffmpeg": "0.8.1"}


class FakeApi:
    """Records what `deploy` asks of the Hub."""

    def __init__(self, remote: list[str]):
        self.remote, self.calls = remote, []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", repo_id, kw))

    def list_repo_files(self, repo_id, **kw):
        return list(self.remote)

    def create_commit(self, repo_id, operations, **kw):
        self.calls.append(("create_commit", repo_id, operations, kw))
        return type("Info", (), {"commit_url": f"https://huggingface.co/spaces/{repo_id}/commit/abc"})()


def test_deploy_uploads_in_one_commit_and_removes_stale_files(tmp_path, monkeypatch):
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, constants

    root = make_checkout(tmp_path / "repo")
    files = space.space_files(root)
    api = FakeApi(remote=[".gitattributes", "README.md", "app.py", "dgf_core/old_module.py"])
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE"):
        space.deploy(files, "me/x", api=api)
    assert api.calls == []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    url = space.deploy(files, "me/x", api=api)
    assert url == "https://huggingface.co/spaces/me/x/commit/abc"
    (_, repo, kw), (_, repo2, ops, kw2) = api.calls
    assert repo == repo2 == "me/x" and kw["repo_type"] == kw2["repo_type"] == "space" and kw["space_sdk"] == "gradio"
    adds = {op.path_in_repo: op for op in ops if isinstance(op, CommitOperationAdd)}
    assert set(adds) == {f.path_in_repo for f in files}
    assert adds["README.md"].path_or_fileobj == str(root / space.SPACE_CARD)
    assert [op.path_in_repo for op in ops if isinstance(op, CommitOperationDelete)] == ["dgf_core/old_module.py"]
