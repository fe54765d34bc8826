"""The Generate tab: one face per seed (/generate) and a grid of consecutive seeds (/grid)."""
from __future__ import annotations

import json
import secrets

import gradio as gr
from PIL import Image

from dgf_core.generation import compare
from dgf_core.images import save_png
from dgf_core.latent import SEED_MAX, check_seed

from . import common
from .common import MODELS, upscale_radio, upscaler_for, user_errors

SEED_SLIDER_MAX = 9_999  # the slider browses 0..9999; the number box takes any seed up to SEED_MAX
MAX_GRID = 64


@user_errors
def generate(seed: float, model: str, truncation: float, upscale: str = "auto") -> str:
    """One face (upscaled x2/x4 if asked; "auto": a 128-px model's at 256 px, a smaller one's at its own pixels) as a
    PNG file carrying its recipe (text chunks)."""
    pipe = MODELS.get(model)
    up, factor = upscaler_for(upscale, pipe.resolution)
    picture = compare.face_picture(pipe, check_seed(seed), truncation, up, factor)
    return str(picture.save(common.SCRATCH.new()))


def png_download(path: str):
    """The Download PNG button for the shown face, and its recipe as read back from the PNG's text chunks."""
    with Image.open(path) as im:
        recipe = json.loads(im.text["dgf_recipe"])
    return gr.DownloadButton(value=path, interactive=True), recipe


@user_errors
def grid(seed: float, count: float, model: str, truncation: float) -> tuple[list[tuple[str, str]], list[int]]:
    """`count` consecutive seeds from `seed`, one PNG each (with its recipe)."""
    pipe = MODELS.get(model)
    seed = check_seed(seed)
    if isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count) or not 1 <= count <= MAX_GRID:
        raise ValueError(f"grid size must be a whole number in 1..{MAX_GRID}, got {count!r}")
    count = int(count)
    seeds = [check_seed(s) for s in range(seed, seed + count)]
    folder = common.SCRATCH.new()
    items = [(str(save_png(img, folder / f"seed{s}.png", pipe.png_text(seed=s, truncation=truncation))), f"seed {s}")
             for s, img in zip(seeds, pipe.generate(seeds, truncation))]
    return items, seeds


@user_errors
def step_seed(seed: float, delta: int) -> int:
    return min(max(check_seed(seed) + delta, 0), SEED_MAX)


def random_seed() -> int:
    return secrets.randbelow(SEED_SLIDER_MAX + 1)


def generate_tab(model: gr.Dropdown, demo: gr.Blocks) -> None:
    with gr.Tab("Generate"):
        with gr.Row():
            with gr.Column(scale=1):
                seed_slider = gr.Slider(0, SEED_SLIDER_MAX, value=42, step=1, label="Seed")
                with gr.Row():
                    seed = gr.Number(42, label=f"Seed (0..{SEED_MAX})", elem_id="seed", scale=2)
                    prev_btn = gr.Button("◀ Previous", elem_id="prev", scale=1)
                    next_btn = gr.Button("Next ▶", elem_id="next", scale=1)
                    random_btn = gr.Button("Random", elem_id="random", scale=1)
                truncation = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Truncation ψ",
                                       info="lower: more typical faces, less variety; 1 = none")
                upscale = upscale_radio("generate-upscale", auto=True)
                recipe = gr.JSON(label="Recipe (also in the PNG's text chunks)", max_height=240)
            with gr.Column(scale=1):
                image = gr.Image(label="Face (PNG, synthetic)", type="filepath", format="png", height=320,
                                 buttons=["download", "fullscreen"], elem_id="face", elem_classes="pixelated")
                png_btn = gr.DownloadButton("Download PNG", interactive=False, elem_id="dl-png")
        with gr.Row():
            count = gr.Slider(1, MAX_GRID, value=16, step=1, label="Grid: consecutive seeds from the current one", scale=3)
            grid_btn = gr.Button("Show grid", elem_id="grid-btn", scale=1)
        gallery = gr.Gallery(label="Click a face to open its seed", columns=8, format="png",
                             elem_id="grid", elem_classes="pixelated")
        grid_seeds = gr.State([])

        inputs = [seed, model, truncation, upscale]
        gr.on([seed.change, model.change, truncation.release, upscale.change, demo.load], generate, inputs, image,
              api_name="generate").success(png_download, image, [png_btn, recipe], api_visibility="private",
                                          show_progress="hidden")
        gr.on([grid_btn.click, count.release, demo.load], grid, [seed, count, model, truncation], [gallery, grid_seeds],
              api_name="grid")
        seed.change(lambda s: min(max(int(s or 0), 0), SEED_SLIDER_MAX), seed, seed_slider, api_visibility="private",
                    show_progress="hidden")
        seed_slider.release(lambda s: s, seed_slider, seed, api_visibility="private", show_progress="hidden")
        prev_btn.click(lambda s: step_seed(s, -1), seed, seed, api_visibility="private", show_progress="hidden")
        next_btn.click(lambda s: step_seed(s, +1), seed, seed, api_visibility="private", show_progress="hidden")
        random_btn.click(random_seed, None, seed, api_visibility="private", show_progress="hidden")
        gallery.select(_pick_seed, grid_seeds, seed, api_visibility="private", show_progress="hidden")


def _pick_seed(seeds: list[int], evt: gr.SelectData) -> int:
    return seeds[evt.index]
