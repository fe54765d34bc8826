"""Training: the GAN loop (`loop.train`, in named pieces: setup, one step, logging, evaluation snapshots,
checkpoint, export), its losses and EMA (`losses`), differentiable augmentation (`augment`), and the upscaler's
trainer (`upscaler`) with its degraded-input data (`sr_data`), and the classifier two-sample test (`two_sample`:
a small CNN trained to tell two image sets apart, which the run's evaluations and `evaluate` report).
Imports models, checkpoints and data, and, lazily for the run's snapshot evaluations, the face detector (face rate),
the alignment recipe and the attribute classifier (coverage) from `faces`; nothing here imports generation,
evaluation or a UI."""
