"""Evaluation: quality metrics of generators (`metrics.evaluate_model`: face rate, memorization, classifier
two-sample test from `training.two_sample`, coverage, FID with user-given weights), of upscalers (`sr_metrics`),
learning curves of training runs (`curves`) and speed benchmarks (`bench`). The top of the core: it may import
every other subsystem, and none of them imports it."""
