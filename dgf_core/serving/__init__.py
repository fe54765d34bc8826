"""What the UIs share: the weights-folder registry and model caches (`registry`), safe reading of uploads
(`uploads`) and private per-request scratch folders (`scratch`). No UI code: app.py and the Streamlit pages
import this, never the other way round."""
