"""A real browser (Debian's chromium, driven by Playwright) against `python app.py` (fixture `gradio_app`).

Needs /usr/bin/chromium (`./run test` installs it; never `playwright install`). A screenshot of the final
page is kept under test-artifacts/ (git-ignored).
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgf_core.generation import video

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 90_000  # a slow, shared CI machine
# The tests drive one page in turn, in this order: `./run test` (pytest-xdist, --dist loadfile) keeps a file's tests
# together on one worker.

if os.environ.get("DGF_SKIP_BROWSER") == "1":
    pytest.skip("DGF_SKIP_BROWSER=1", allow_module_level=True)


@pytest.fixture(scope="module")
def page(gradio_app):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver (./run test does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
            pg.set_default_timeout(TIMEOUT_MS)
            pg.goto(gradio_app.url)
            yield pg
        finally:
            browser.close()


def fetch_image(page, src: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))


def test_changing_the_seed_changes_the_face(page):
    face = page.locator("#face img")
    face.wait_for()
    first = face.get_attribute("src")
    assert first.endswith("-seed42.png")
    page.locator("#next").click()
    page.wait_for_function("s => { const i = document.querySelector('#face img'); return i && i.src !== s }", arg=first)
    second = face.get_attribute("src")
    assert second.endswith("-seed43.png") and page.locator("#seed input").input_value() == "43"
    a, b = fetch_image(page, first), fetch_image(page, second)
    assert a.shape == b.shape == (16, 16, 3) and not np.array_equal(a, b)


def test_download_the_png_with_its_recipe(page, tmp_path):
    page.wait_for_function("() => { const b = document.querySelector('#dl-png'); return b && !b.disabled }")
    with page.expect_download() as dl:
        page.locator("#dl-png").click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (16, 16)
        recipe, notice = json.loads(im.text["dgf_recipe"]), im.text["Description"]
    assert recipe["seed"] == 43 and recipe["synthetic"] is True and path.name == "tiny-dcgan-seed43.png"
    assert "synthetic" in notice.lower()


def test_render_and_download_a_clip(page, tmp_path):
    page.get_by_role("tab", name="Interpolate").click()
    page.locator("#keyframes textarea").fill("3, 9")
    for elem, value in (("#frames", "6"), ("#fps", "12")):
        box = page.locator(f"{elem} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.locator("#render").click()
    page.locator("#clip video").wait_for()
    page.wait_for_function("() => { const b = document.querySelector('#dl-mp4'); return b && !b.disabled }")
    with page.expect_download() as dl:
        page.locator("#dl-mp4").click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.suffix == ".mp4"
    frames, fps = video.read_clip(path)
    # 2 keyframes, looped (the default): 2 x 6 frames at 12 fps = 1 s; a 16 px model at pixel scale 8
    assert frames.shape == (12, 128, 128, 3) and fps == 12
    assert frames.shape[0] / fps == pytest.approx(1.0, rel=0.1)
    recipe = video.read_clip_recipe(path)
    assert recipe["seeds"] == [3, 9] and recipe["synthetic"] is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "browser.png"), full_page=True)
    assert (ARTIFACTS / "browser.png").stat().st_size > 10_000


def test_compare_tab_shows_the_same_seeds_in_both_models_with_their_cards(page):
    page.get_by_role("tab", name="Compare").click()
    image = page.locator("#compare-image img")
    image.wait_for()
    grid = fetch_image(page, image.get_attribute("src"))
    assert grid.shape == (2 + 3 * 18, 2 + 2 * 18, 3)  # seeds 1, 2, 3 (the default) x tiny-dcgan | tiny-stylegan2
    page.wait_for_function("() => document.querySelector('#card-b')?.innerText.includes('memorization ratio: 1.250')")
    assert "faces detected (p>=0.999): not evaluated" in page.locator("#card-a").inner_text()


def test_memory_photo_can_be_chosen_only_after_consent(page):
    page.get_by_role("tab", name="Memory from a photo").click()
    page.locator("#consent").wait_for()
    assert page.locator("#photo input[type=file]").count() == 0
    page.locator("#consent input").check()
    page.locator("#photo input[type=file]").wait_for(state="attached")
    assert page.locator("#photo input[type=file]").count() == 1


def test_memory_motion_choice_shows_a_preview(page):
    page.get_by_role("tab", name="Memory from a photo").click()
    box = page.locator("#motion input")
    box.wait_for()
    box.click()
    box.fill("age")
    page.keyboard.press("Enter")
    preview = page.locator("#motion-preview img")
    preview.wait_for(timeout=60_000)
    assert preview.get_attribute("src").startswith("data:image/gif;base64,")
    assert "age on the model's own face" in page.locator("#motion-preview").inner_text()
    assert page.locator("#render input[value=photo]").is_checked()


def test_a_voice_memory_plays_with_sound_in_chromium(page, tmp_path):
    """The MP4 of a voice memory: chromium decodes its audio track (Web Audio) to the recording's length within one
    frame, and a <video> of it reports the same duration and decodes audio while it plays."""
    import base64

    import torch

    from conftest import make_tiny_dcgan
    from test_audio import syllables, write_wav

    from dgf_core.checkpoint import load_model
    from dgf_core.faces.memory import MemorySpec, make_memory, voice_spec
    from dgf_core.generation.audio import load_recording

    model = load_model(make_tiny_dcgan(tmp_path / "tiny"))
    pcm, _ = syllables(2.0, 16000, seed=6)
    rec = load_recording(write_wav(tmp_path / "v.wav", pcm, 16000))
    spec = voice_spec(MemorySpec(fps=8, radius=0.05), rec)
    make_memory(model, torch.zeros(1, 16), "z", spec, [tmp_path / "m.mp4"], voice=rec, mouth_follows_voice=False)
    data = base64.b64encode((tmp_path / "m.mp4").read_bytes()).decode("ascii")
    result = page.evaluate("""async (b64) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const ctx = new OfflineAudioContext(1, 48000, 48000);
        const audio = await ctx.decodeAudioData(bytes.buffer.slice(0));
        let peak = 0;
        for (const x of audio.getChannelData(0)) peak = Math.max(peak, Math.abs(x));
        const v = document.createElement('video');
        v.muted = true;
        v.src = URL.createObjectURL(new Blob([bytes], {type: 'video/mp4'}));
        document.body.appendChild(v);
        await new Promise((ok, bad) => { v.onloadedmetadata = ok; v.onerror = () => bad(new Error('video error')); });
        await v.play();
        await new Promise(ok => setTimeout(ok, 1200));
        const decoded = v.webkitAudioDecodedByteCount;
        v.pause(); v.remove();
        return {audioSeconds: audio.duration, peak, videoSeconds: v.duration, decoded};
    }""", data)
    assert abs(result["audioSeconds"] - 2.0) <= 1 / 8 and result["peak"] > 0.05, result
    assert abs(result["videoSeconds"] - 2.0) <= 1 / 8 and result["decoded"] > 0, result

