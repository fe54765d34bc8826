"""Generate: one face per seed (optionally upscaled), previous/next/random, a grid of consecutive seeds, PNG download
with provenance."""
import secrets

import streamlit as st
from PIL import Image

from dgf_core.generation import compare
from dgf_core.images import to_pil
from dgf_core.latent import SEED_MAX
from streamlit_shared import NOTICE, model_picker, pipeline, upscale_option

MAX_GRID = 64

st.set_page_config(page_title="Generate · Deeply Good Fakes", page_icon="🖼️")
st.title("Generate")
st.caption(NOTICE)
model = model_picker()
pipe = pipeline(model)

st.session_state.setdefault("seed", 42)


def step(delta: int) -> None:
    st.session_state.seed = min(max(int(st.session_state.seed) + delta, 0), SEED_MAX)


def pick_random() -> None:
    st.session_state.seed = secrets.randbelow(10_000)


seed = int(st.number_input(f"Seed (0..{SEED_MAX})", min_value=0, max_value=SEED_MAX, step=1, key="seed"))
prev_col, next_col, random_col = st.columns(3)
prev_col.button("◀ Previous", key="prev", on_click=step, args=(-1,), width="stretch")
next_col.button("Next ▶", key="next", on_click=step, args=(1,), width="stretch")
random_col.button("🎲 Random", key="random", on_click=pick_random, width="stretch")
psi = st.slider("Truncation ψ", 0.0, 1.0, 1.0, 0.05, key="truncation",
                help="lower: more typical faces, less variety; 1 = none")
up, factor = upscale_option(auto_for=pipe.resolution)

picture = compare.face_picture(pipe, seed, psi, up, factor)  # (3, S, S) uint8, S = R * factor, and its recipe
side = pipe.resolution * factor
show = max(1, 256 // side)
st.image(to_pil(picture.image).resize((side * show,) * 2, Image.NEAREST), caption=f"{model}, seed {seed} (synthetic)",
         output_format="PNG")
st.download_button("Download PNG", picture.png_bytes(), file_name=picture.name, mime="image/png", key="download",
                   on_click="ignore")
with st.expander("Recipe (also in the PNG's text chunks)"):
    st.json(picture.recipe)

count = st.slider("Grid: consecutive seeds from the current one", 1, MAX_GRID, 16, key="grid")
seeds = [s for s in range(seed, seed + count) if s <= SEED_MAX]
faces = pipe.generate(seeds, psi)
st.image([to_pil(f) for f in faces], caption=[f"seed {s}" for s in seeds], width=max(64, pipe.resolution),
         output_format="PNG")
