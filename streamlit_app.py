"""Deeply Good Fakes in Streamlit: `streamlit run streamlit_app.py`. The pages are in pages/ (one file each)."""
import streamlit as st

from dgf_core.serving import registry
from streamlit_shared import NOTICE

st.set_page_config(page_title="Deeply Good Fakes", page_icon="🎭")
st.title("Deeply Good Fakes")
st.markdown(NOTICE)
st.page_link("pages/1_Generate.py", label="Generate: click through seeds", icon="🖼️")
st.page_link("pages/2_Interpolate.py", label="Interpolate: video memories between faces", icon="🎞️")
st.page_link("pages/3_Compare.py", label="Compare: the same seeds in two models", icon="⚖️")
st.page_link("pages/4_Upscale.py", label="Upscale: enlarge a face 2x or 4x", icon="🔍")
st.page_link("pages/5_Memory.py", label="Memory from a photo: a looping clip of a face you have the right to use",
             icon="🕯️")

entries = registry.scan()
st.subheader("Models")
if not entries:
    st.warning(f"No models in the weights folder ({registry.default_weights_dir()}): put a model folder there "
               "(see README) or set DGF_WEIGHTS_DIR.")
for e in entries:
    size = f", {e.resolution}x{e.resolution}" if e.resolution else ""
    st.markdown(f"- **{e.name}**: {e.kind}, {e.family}{size}. {e.description}")
