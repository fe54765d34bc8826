"""The Upscale tab: an uploaded image, 2x or 4x larger through the weights folder's upscaler (/upscale)."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from dgf_core.checkpoint import read_config
from dgf_core.generation import compare, upscale
from dgf_core.images import save_png
from dgf_core.serving import registry, uploads
from dgf_core.serving.uploads import open_upload

from . import common
from .common import RENDER_CONCURRENCY, UPSCALE_CHOICES, upscaler_for, user_errors


@user_errors
def upscale_image(image: str | None, factor: str = "x4", detail: float = 0.0) -> str:
    """An uploaded image (checked by dgf_core.serving.uploads) -> PNG `factor` times larger, naming the upscaler and its
    weights hash in its text chunks (never the uploaded file's name). `detail` 0..1: from the PSNR end (0, smooth) to
    the GAN end (1, invented texture), by network interpolation; above 0 it needs an upscaler with detail weights."""
    if not image:
        raise ValueError("upload an image to upscale")
    up, f = upscaler_for(factor)
    if up is None:
        raise ValueError("choose x2 or x4")
    detail = upscale.check_detail(detail)
    if detail > 0 and not up.has_detail:
        raise ValueError(upscale.no_detail_message(up.name))  # before the upload is read
    return str(compare.upscaled_picture(up, read_or_drop(image), f, detail).save(common.SCRATCH.new()))


@user_errors
def upscale_preview(image: str | None) -> str | None:
    """The upload as it will be read (first frame, RGB, EXIF-rotated), or nothing: the 'before' image."""
    if not image:
        return None
    return str(save_png(read_or_drop(image), common.SCRATCH.new() / "before.png"))


def read_or_drop(path: str) -> Image.Image:
    """The upload as an image. One that cannot be used (not an image, corrupt, too large) is deleted from Gradio's
    upload folder at once, not left there for the cache's hour: nothing can be made of it. A good upload stays for
    the tab's next click (another factor, the same image)."""
    try:
        return open_upload(path)
    except uploads.UploadError:
        folder = Path(get_upload_folder()).resolve()
        p = Path(path).resolve()
        if p.is_relative_to(folder) and p != folder:
            p.unlink(missing_ok=True)
        raise


def upscale_recipe_of(path: str) -> tuple[gr.DownloadButton, dict]:
    with Image.open(path) as im:
        recipe = json.loads(im.text["dgf_upscale"])
    return gr.DownloadButton(value=path, interactive=True), recipe


def ships_detail(name: str) -> bool:
    """Whether the weights folder's upscaler `name` has a GAN end (config.json's "detail" entry), without loading it."""
    try:
        return "detail" in read_config(registry.default_weights_dir() / name)
    except (OSError, ValueError):
        return False


def upscale_tab() -> None:
    name = registry.default_upscaler()
    with gr.Tab("Upscale"):
        gr.Markdown(f"Enlarge a face 2x or 4x with the upscaler GAN. Images: PNG, JPEG, WebP, BMP or GIF (first frame), "
                    f"at most {uploads.MAX_UPLOAD_BYTES // 2**20} MB and {upscale.MAX_INPUT_SIDE} px a side. "
                    + (f"Upscaler: **{name}**." if name else
                       f"**No upscaler in the weights folder** ({registry.default_weights_dir()}): put an upscaler model "
                       "folder there (see README) to use this tab."))
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.File(label="Image to upscale", file_types=["image"], type="filepath", elem_id="upscale-input")
                factor = gr.Radio(UPSCALE_CHOICES[1:], value="x4", label="Factor", interactive=name is not None)
                has_detail = name is not None and ships_detail(name)
                detail = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Detail", interactive=has_detail,
                                   elem_id="upscale-detail",
                                   info="0: smooth and faithful (the PSNR end); 1: sharper, with texture the model "
                                        "invents (the GAN end)" if has_detail else
                                   f"stays at 0: {upscale.no_detail_message(name)}" if name else "no upscaler")
                button = gr.Button("Upscale", variant="primary", interactive=name is not None, elem_id="upscale-btn")
                recipe = gr.JSON(label="Recipe (in the PNG's text chunks)", max_height=200)
            with gr.Column(scale=2):
                with gr.Row():
                    before = gr.Image(label="Before", type="filepath", format="png", height=320, elem_id="upscale-before",
                                      elem_classes="pixelated")
                    after = gr.Image(label="After", type="filepath", format="png", height=320, elem_id="upscale-after",
                                     buttons=["download", "fullscreen"])
                png_btn = gr.DownloadButton("Download PNG", interactive=False, elem_id="upscale-dl")
        source.change(upscale_preview, source, before, api_visibility="private", show_progress="hidden")
        button.click(upscale_image, [source, factor, detail], after, api_name="upscale", concurrency_limit=RENDER_CONCURRENCY,
                     concurrency_id="render").success(upscale_recipe_of, after, [png_btn, recipe],
                                                      api_visibility="private")
