"""Upscale: an uploaded image enlarged 2x or 4x by the upscaler GAN, before and after, PNG with provenance."""

import streamlit as st

from dgf_core.generation import compare, upscale
from dgf_core.serving import registry, uploads
from streamlit_shared import no_upscaler_note, upscaler

st.set_page_config(page_title="Upscale · Deeply Good Fakes", page_icon="🔍")
st.title("Upscale")
st.markdown(f"Enlarge a face 2x or 4x with the upscaler GAN. Images: PNG, JPEG, WebP, BMP or GIF (first frame), at most "
            f"{uploads.MAX_UPLOAD_BYTES // 2**20} MB and {upscale.MAX_INPUT_SIDE} px a side.")
name = registry.default_upscaler()
if name is None:
    st.warning(no_upscaler_note())
    st.stop()
up = upscaler(name)
st.caption(f"Upscaler: {name}")

source = st.file_uploader("Image to upscale", type=["png", "jpg", "jpeg", "webp", "bmp", "gif"], key="upload")
factor = upscale.check_factor(st.radio("Factor", ["x2", "x4"], index=1, horizontal=True, key="factor"))
detail = st.slider("Detail", 0.0, 1.0, 0.0, 0.05, key="detail", disabled=not up.has_detail,
                   help="0: the faithful (PSNR) weights; 1: the GAN end, sharper, with invented texture; between: a blend")
if not up.has_detail:
    st.caption(f"Detail stays at 0: {upscale.no_detail_message(up.name)}.")
if source is not None:
    try:
        picture = uploads.open_upload(source.getvalue())
        result = compare.upscaled_picture(up, picture, factor, detail)
    except ValueError as e:  # UploadError, or an image over the upscaler's size limit
        st.error(str(e))
        st.stop()
    big = result.image
    before, after = st.columns(2)
    before.image(picture, caption=f"Before: {picture.width}x{picture.height}", output_format="PNG")
    how = f"x{factor}, {up.name}" + (f", detail {detail:g}" if detail else "")
    after.image(big, caption=f"After: {big.width}x{big.height} ({how})", output_format="PNG")
    st.download_button("Download PNG", result.png_bytes(), file_name=result.name, mime="image/png",
                       key="download", on_click="ignore")
    with st.expander("Recipe (in the PNG's text chunks)"):
        st.json(result.recipe)
