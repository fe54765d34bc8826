"""Screenshot of the Gradio app for the README (docs/app.png), taken with Debian's chromium through Playwright.

    python scripts/screenshot_app.py                        # the models in weights/ (the shipped ones)
    python scripts/screenshot_app.py --weights-dir DIR --model NAME --seed 7 --out docs/app.png
    python scripts/screenshot_app.py --tab interpolate --keyframes 1,7,42 --out docs/app-interpolate.png
    python scripts/screenshot_app.py --tab compare --compare-seeds 1,2,3 --out docs/app-compare.png

Starts `python app.py` on a free port (stopped by its PID after), opens it in /usr/bin/chromium (never
`playwright install`), sets the seed (renders a clip for --tab interpolate; shows the same seeds in two models, with a side-by-side
clip, for --tab compare), waits for every image, and
writes the page as PNG.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dgf_core.serving import registry  # noqa: E402
from dgf_core.evaluation.bench import app_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ALL_IMAGES_LOADED = "() => [...document.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights-dir", default=None, help="weights folder (default: $DGF_WEIGHTS_DIR, else weights/)")
    p.add_argument("--model", default=None, help="model to show (default: the app's default)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tab", choices=["generate", "interpolate", "compare"], default="generate")
    p.add_argument("--keyframes", default="1, 7, 42", help="keyframe seeds for --tab interpolate and compare")
    p.add_argument("--compare-seeds", default="1, 2, 3", help="seeds for --tab compare")
    p.add_argument("--out", default=str(ROOT / "docs" / "app.png"))
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds for the app to start and each step")
    a = p.parse_args(argv)

    weights = Path(a.weights_dir) if a.weights_dir else registry.default_weights_dir()
    names = registry.generators(weights)
    if not names:
        print(f"error: no generator in {weights}", file=sys.stderr)
        return 2
    if a.model and a.model not in names:
        print(f"error: no model {a.model!r} in {weights}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with app_server(weights_dir=weights, timeout=a.timeout) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": a.width, "height": a.height})
            page.set_default_timeout(a.timeout * 1000)
            page.goto(srv.url)
            page.locator("#face img").wait_for()
            if a.model:
                page.locator("#model input").fill(a.model)
                page.locator("#model input").press("Enter")
                page.wait_for_function(f"() => document.querySelector('#face img')?.src.includes('{a.model}-seed')")
            seed_box = page.locator("#seed input")
            if seed_box.input_value() != str(a.seed):
                seed_box.fill(str(a.seed))
                seed_box.press("Enter")
                page.wait_for_function(f"() => document.querySelector('#face img')?.src.endsWith('-seed{a.seed}.png')")
            page.locator("#grid-btn").click()
            page.wait_for_function(f"() => document.querySelector('#grid')?.innerText.includes('seed {a.seed}')")
            if a.tab == "interpolate":
                page.get_by_role("tab", name="Interpolate").click()
                page.locator("#keyframes textarea").fill(a.keyframes)
                page.locator("#render").click()
                page.wait_for_function("() => { const b = document.querySelector('#dl-mp4'); return b && !b.disabled }")
            if a.tab == "compare":
                page.get_by_role("tab", name="Compare").click()
                before = page.locator("#compare-image img").get_attribute("src")
                page.locator("#compare-seeds textarea").fill(a.compare_seeds)
                page.locator("#compare-btn").click()
                page.wait_for_function("s => document.querySelector('#compare-image img')?.src !== s", arg=before)
                page.locator("#compare-keyframes textarea").fill(a.keyframes)
                page.locator("#compare-render").click()
                page.wait_for_function("() => { const b = document.querySelector('#compare-dl-mp4'); return b && !b.disabled }")
            page.wait_for_function(ALL_IMAGES_LOADED)
            page.wait_for_timeout(500)  # let transitions settle
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
