"""What the UIs share: the weights-folder registry and model caches (`registry`), safe reading of uploads
(`uploads`), private per-request scratch folders (`scratch`) and slow work at a lower CPU priority (`priority`).
No UI code: app.py and the Streamlit pages import this, never the other way round."""
