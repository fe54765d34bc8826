"""Deeply Good Fakes: face generators (DCGAN, StyleGAN2), an upscaler, and video memories.

Nothing here imports a UI; `app.py` and `streamlit_app.py` are thin layers over this package.
"""
__version__ = "0.1.0"
