"""What the Streamlit pages share: the model picker, the cached pipelines, PNG bytes with provenance.

Pipelines are cached with `st.cache_resource`, so one copy of each model serves every page and session:
they hold read-only models and no per-request state. The cache key includes the model folder's version
(its config's mtime), so a replaced model is loaded afresh.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st
import torch

from dgf_core import registry
from dgf_core.checkpoint import CheckpointError
from dgf_core.images import save_png
from dgf_core.pipeline import FacePipeline

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


def model_picker() -> str:
    """The sidebar's model select box (every generator in the weights folder); stops the page if there is none."""
    names = registry.generators()
    if not names:
        st.error(f"No generator found in the weights folder ({registry.default_weights_dir()}). Put a model folder "
                 "there (see README) or set DGF_WEIGHTS_DIR.")
        st.stop()
    default = registry.default_generator()
    name = st.sidebar.selectbox("Model", names, index=names.index(default), key="model")
    e = registry.describe(name)
    st.sidebar.caption(f"{e.family}, {e.resolution}x{e.resolution}. {e.description}")
    return name


def png_bytes(image: torch.Tensor, text: dict[str, str]) -> bytes:
    """A PNG (with text chunks) as bytes, for st.download_button."""
    with tempfile.TemporaryDirectory() as d:
        return save_png(image, Path(d) / "face.png", text).read_bytes()
