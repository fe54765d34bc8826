#!/usr/bin/env bash
# Train the shipped StyleGAN2 (compact 64x64 config, 4.76M-parameter G) on one GPU, on the same faces and
# the same held-out split as the DCGAN, then evaluate it at psi 1.0 and 0.7. Run from the repository root.
#   Here:        python -m dgf_core pack --data ../shared/data/celeba --out packs/celeba64   (64x64 JPEGs, same file names)
#   GPU machine: bash scripts/train_stylegan_gpu.sh packs/celeba64 "$OUT/stylegan2-celeba64"
#   Then here:   copy OUT/stylegan2-celeba64/model to weights/stylegan2-celeba64 (config.json holds the card
#                and, after the evaluate calls below, the evaluation numbers).
# Throughput is not measured on a GPU yet: the non-grouped modulated conv avoids the grouped convolution
# that held a comparable model to 712 images/s on an H100; read images_per_s in OUT/log.jsonl after the first
# minute and, if needed, stop (Ctrl-C saves the state) and continue with --resume --steps N.
# Continue or extend a run: RESUME=1 STEPS=40000 bash scripts/train_stylegan_gpu.sh DATA OUT
# Several GPUs: torchrun --nproc-per-node 8 -m dgf_core train stylegan2 ... (same options; --batch-size is global).
set -euo pipefail
DATA=${1:-packs/celeba64}
OUT=${2:-runs/stylegan2-celeba64-gpu}
STEPS=${STEPS:-25000}    # 25k steps x 64 = 1.6M images
BATCH=${BATCH:-64}
# EMA half-life of 10k images, as in StyleGAN2: 0.5 ** (64 / 10000) = 0.99557 per step at batch 64
EMA=${EMA:-0.9956}
python -m dgf_core train stylegan2 --data "$DATA" --out "$OUT" --steps "$STEPS" --batch-size "$BATCH" \
  --ema-decay "$EMA" --r1-gamma 0.1 --log-every 200 --sample-every 2500 --checkpoint-every 2500 \
  ${RESUME:+--resume}
# family defaults used above: Adam lr 2e-3, betas (0, 0.99); lazy R1 every 16 steps; style-mixing prob 0.9; bf16 autocast
python -m dgf_core evaluate --model "$OUT/model" --real "$DATA" --n 1000 --json "$OUT/eval.json" --write-card
python -m dgf_core evaluate --model "$OUT/model" --real "$DATA" --n 1000 --truncation 0.7 --json "$OUT/eval-psi0.7.json" --write-card
python -m dgf_core generate --model "$OUT/model" --seeds 0-63 --out "$OUT/samples-psi0.7" --grid "$OUT/grid-psi0.7.png" --truncation 0.7
python -m dgf_core generate --model "$OUT/model" --seeds 0-7 --mix-seed 100 --mix-crossover 4 --out "$OUT/mix" --grid "$OUT/grid-mix.png"
