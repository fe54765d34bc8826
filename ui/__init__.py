"""The Gradio app's tabs, one module each, assembled by app.py: common (model caches, scratch folders, shared uploads,
input checks, the error wrapper, the queue's limits), generate, interpolate, compare, upscale and memory. Each tab
module holds its handlers (one dgf_core call per user action) and one builder, `*_tab`, that lays out its widgets
and wires them to those handlers; nothing in dgf_core imports this package."""
