"""What the Streamlit pages share: the model picker, the cached pipelines and upscalers, the upscale option (the
pictures themselves, with their provenance, come from `dgf_core.generation.compare`).

Pipelines (and upscalers) are cached with `st.cache_resource`, so one copy of each model serves every page and session:
they hold read-only models and no per-request state. The cache key includes the model folder's version
(its config's mtime), so a replaced model is loaded afresh.
"""
from __future__ import annotations

import streamlit as st

from dgf_core.checkpoint import CheckpointError, LoadedModel
from dgf_core.generation.pipeline import FacePipeline
from dgf_core.generation import compare
from dgf_core.generation.upscale import Upscaler, check_factor
from dgf_core.serving import registry

UPSCALE_CHOICES = ["off", "x2", "x4"]

NOTICE = ("Every face here is **synthetic**: made by a neural network from a seed, not a photo of a real person. "
          "Downloads carry that notice and their recipe.")


@st.cache_resource(show_spinner="Loading model...", max_entries=4)
def _load(name: str, version: int) -> FacePipeline:
    return registry.load_generator(name)


def pipeline(name: str) -> FacePipeline:
    """The shared pipeline of generator `name`; a model that cannot be loaded stops the page with its reason."""
    try:
        return _load(name, registry.model_version(name))
    except CheckpointError as e:
        st.error(str(e))
        st.stop()


@st.cache_resource(show_spinner="Loading model...", max_entries=2)
def _load_for_projection(name: str, version: int) -> LoadedModel:
    return registry.load_for_projection(name)


def projection_model(name: str) -> LoadedModel:
    """Generator `name` with its discriminator (for projecting photos), shared; stops the page if it cannot load."""
    try:
        return _load_for_projection(name, registry.model_version(name, kind="projection"))
    except CheckpointError as e:
        st.error(str(e))
        st.stop()


@st.cache_resource(show_spinner="Loading upscaler...", max_entries=2)
def _load_upscaler(name: str, version: int) -> Upscaler:
    return registry.load_upscaler(name)


def upscaler(name: str) -> Upscaler:
    """The shared upscaler `name`; one that cannot be loaded stops the page with its reason."""
    try:
        return _load_upscaler(name, registry.model_version(name, kind="upscaler"))
    except CheckpointError as e:
        st.error(str(e))
        st.stop()


def no_upscaler_note() -> str:
    return (f"No upscaler in the weights folder ({registry.default_weights_dir()}): put an upscaler model folder there "
            "(see README) or set DGF_WEIGHTS_DIR.")


def upscale_option(key: str = "upscale", auto_for: int | None = None) -> tuple[Upscaler | None, int]:
    """The upscale radio (off / x2 / x4, with the weights folder's upscaler) -> (upscaler or None, factor).
    Without an upscaler it is shown disabled at "off", with a note saying why. With `auto_for` (the model's
    resolution) it also offers "auto", the default, as the Gradio app does: a 128-px model's faces at 256 px,
    smaller ones at their own pixels (`compare.display_factor`); "off" then reads "original pixels"."""
    name = registry.default_upscaler()
    if name is None:
        st.radio("Upscale", UPSCALE_CHOICES[:1], key=key, horizontal=True, disabled=True)
        st.caption(f"Upscaling is off. {no_upscaler_note()}")
        return None, 1
    if auto_for is not None:
        choice = st.radio("Upscale", ["auto", *UPSCALE_CHOICES], key=key, horizontal=True,
                          format_func=lambda c: "original pixels" if c == "off" else c,
                          help=f"a GAN upscaler ({name}) enlarges each face; auto: a model of 128 px or more at "
                               f"{compare.DISPLAY_SIDE} px, a 64-px one at its own pixels")
        factor = compare.display_factor(auto_for, True) if choice == "auto" else check_factor(choice)
    else:
        factor = check_factor(st.radio("Upscale", UPSCALE_CHOICES, key=key, horizontal=True,
                                       help=f"a GAN upscaler ({name}) enlarges each face"))
    return (upscaler(name) if factor > 1 else None), factor


def model_picker() -> str:
    """The sidebar's model select box (every generator in the weights folder); stops the page if there is none."""
    names = registry.generators()
    if not names:
        st.error(f"No generator found in the weights folder ({registry.default_weights_dir()}). Put a model folder "
                 "there (see README) or set DGF_WEIGHTS_DIR.")
        st.stop()
    default = registry.default_generator()
    name = st.sidebar.selectbox("Model", names, index=names.index(default), key="model")
    st.sidebar.caption(registry.describe_line(registry.describe(name)))
    return name
