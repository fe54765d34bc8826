"""README.md and docs/: every relative link and image resolves (the file exists, and a #fragment names a heading
of the page it points to), the README stays a front door (<= 250 lines), and every docs page opens with a
paragraph on what it is for and is listed in docs/index.md."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def prose(text: str) -> str:
    """The page without its fenced code blocks and inline code (links there are examples, not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def links(text: str) -> list[str]:
    return LINK.findall(prose(text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    body = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", body, re.M)}


def test_link_and_slug_parsing():
    text = "See ![a](x.png) and [b [c]](d.md#e-f) and [w](https://x.org) `[no](z.md)`\n```\n[no](y.md)\n```\n"
    assert links(text) == ["x.png", "d.md#e-f", "https://x.org"]
    assert slug("Upscaler (held-out faces, x4; Y-channel PSNR dB / SSIM, 4 px border)") == \
        "upscaler-held-out-faces-x4-y-channel-psnr-db--ssim-4-px-border"
    assert slug("Ethics: consent, labels, limits") == "ethics-consent-labels-limits"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_and_image_resolves(page):
    broken = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif not dest.resolve().is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for must in ("./run app", "./run test", "docs/app.png", "docs/memory.gif", "deploy-space", "## Ethics",
                 "## Data and licences", "## Project layout"):
        assert must in text, must


@pytest.mark.parametrize("page", PAGES[1:], ids=[p.name for p in PAGES[1:]])
def test_docs_pages_open_with_what_they_are_for_and_are_indexed(page):
    lines = page.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), "a page starts with its title"
    first = next(l for l in lines[1:] if l.strip())
    assert first[0].isalpha(), f"{page.name}: the title is followed by a paragraph, not {first[:30]!r}"
    if page.name != "index.md":
        assert f"]({page.name})" in (ROOT / "docs" / "index.md").read_text(encoding="utf-8"), \
            f"docs/index.md does not list {page.name}"
