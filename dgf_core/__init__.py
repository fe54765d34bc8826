"""Deeply Good Fakes: face generators (DCGAN, StyleGAN2), an upscaler, and video memories.

Subsystems, lowest first; a module imports only from its own layer or lower ones (tests/test_layout.py checks):

    latent, images, data      seeds and latents; images, grids, PNG text, pixel metrics; image folders and crops
    models/                   the networks and their config dataclasses, one architecture per file
    checkpoint, official      safetensors + JSON model folders and training states; importing StyleGAN2 weights
    generation/               seeds -> images, clips, side-by-side comparisons, upscaling
    faces/                    photos: detection, alignment, projection, pivotal tuning, edits, likeness, memories
    training/                 the training loops, losses, augmentation, the classifier two-sample test
    evaluation/               metrics, learning curves, benchmarks, promotion of new weights
    serving/                  what the UIs share: model registry and caches, uploads, scratch folders
    cli/                      `python -m dgf_core COMMAND`, one module per command group

Nothing here imports a UI; `app.py` and `streamlit_app.py` are thin layers over this package.
"""
__version__ = "0.1.0"
