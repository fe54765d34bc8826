#!/usr/bin/env bash
# Start, or resume, a long CPU training run in the background at the lowest priority, outside the checkout.
#   bash scripts/train_cpu.sh stylegan2 [RUN]     # the CPU-sized StyleGAN2 (G 1.8M parameters)
#   bash scripts/train_cpu.sh dcgan [RUN]         # the paper's DCGAN
#   bash scripts/train_cpu.sh stylegan2-128 [RUN] # the StyleGAN2 at 128 px on the aligned CelebA + UTKFace set
#                                                 # (`python -m dgf_core data align`; ALIGNED, default ~/dgf-runs/faces128)
# A new run continues the shipped model of its family (weights/dcgan-celeba64, weights/stylegan2-celeba64) when that
# has the run's architecture, so a lost run state costs only the optimizer moments; INIT_FROM=none starts from
# scratch, INIT_FROM=FOLDER from another model folder (a snapshot, say). A new 128-px run continues
# weights/stylegan2-faces128 once it ships, and until then grows the 64-px StyleGAN2 (dgf_core/training/grow.py).
# RUN defaults to ~/dgf-runs/<family>-cpu. The first call starts the run; every later call resumes it exactly
# from its last state (saved every CHECKPOINT_MINUTES, default 8, and on SIGTERM). Watch it with
#   tail -f RUN.out; python -m dgf_core curves RUN --out curves.png
# stop it with `kill -TERM $(cat RUN.pid)` (it saves first), pause/continue with kill -STOP / -CONT.
# Environment: DATA (CelebA root, default ../shared/data/celeba), THREADS (default 1), EVAL_EVERY (images between
# face-rate evaluations + snapshots, default 32000), AUGMENT (DiffAugment policy, e.g. color,translation,cutout;
# default none: measured against it on 2026-12-03, it raised the face rate but not realism, and narrowed coverage),
# AMP=0 (fp32 instead of bf16 autocast, e.g. to check that bf16 trains as well), LR (learning rate; default the
# trainer's, 2e-3), BATCH (batch size; default 32 for the StyleGAN2, 128 for the DCGAN), EMA_DECAY (the generator
# average's decay per step; default the trainer's, 0.999), R1_GAMMA (lazy R1 weight; default the family's, 0.1 for the
# StyleGAN2). A resumed run keeps the LR, BATCH, EMA_DECAY, R1_GAMMA and AUGMENT it started with (read from its log)
# unless they are given.
set -euo pipefail
cd "$(dirname "$0")/.."
FAMILY=${1:?usage: train_cpu.sh stylegan2|stylegan2-128|dcgan [RUN]}
RUN=${2:-$HOME/dgf-runs/$FAMILY-cpu}
DATA=${DATA:-../shared/data/celeba}
PY=${PYTHON:-.venv/bin/python}
if [ "$FAMILY" = stylegan2-128 ]; then
  DATA_ARGS=(--data "${ALIGNED:-$HOME/dgf-runs/faces128}" --resolution 128)
else
  DATA_ARGS=(--data "$DATA/img_align_celeba" --data "$DATA/img_align_celeba_89x109")
fi
COMMON=("${DATA_ARGS[@]}" --steps 2000000
        --checkpoint-every 100000 --checkpoint-minutes "${CHECKPOINT_MINUTES:-8}" --sample-every 1000 --log-every 50
        --cache-dir "$HOME/dgf-runs/cache" --threads "${THREADS:-1}" --no-progress --eval-every "${EVAL_EVERY:-32000}")
if [ "${AMP:-1}" = 0 ]; then COMMON+=(--no-amp); fi
if [ -f "$RUN/state.safetensors" ]; then  # a resumed run keeps its own settings unless told otherwise
  eval "$("$PY" -c 'import json, shlex, sys
starts = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"kind\": \"start\"")]
o = starts[-1]["options"] if starts else {}
for var, key in (("LR", "lr"), ("BATCH", "batch_size"), ("EMA_DECAY", "ema_decay"), ("R1_GAMMA", "r1_gamma"),
                 ("AUGMENT", "augment")):
    if key in o:
        print(f"SAVED_{var}={shlex.quote(str(o[key]))}")' "$RUN/log.jsonl")"
  LR=${LR:-${SAVED_LR:-}}; BATCH=${BATCH:-${SAVED_BATCH:-}}; EMA_DECAY=${EMA_DECAY:-${SAVED_EMA_DECAY:-}}
  R1_GAMMA=${R1_GAMMA:-${SAVED_R1_GAMMA:-}}
  if [ -z "${AUGMENT+set}" ]; then AUGMENT=${SAVED_AUGMENT:-}; fi
fi
if [ -n "${LR:-}" ]; then COMMON+=(--lr "$LR"); fi
if [ -n "${EMA_DECAY:-}" ]; then COMMON+=(--ema-decay "$EMA_DECAY"); fi
if [ -n "${R1_GAMMA:-}" ]; then COMMON+=(--r1-gamma "$R1_GAMMA"); fi
TRAINER=${FAMILY%-128}  # the trainer's family: stylegan2-128 is a stylegan2
case "$FAMILY" in
  stylegan2) ARGS=(--batch-size "${BATCH:-32}" --augment "${AUGMENT-}")
             MODEL=(--model channel_base=2048 --model channel_max=128 --model d_channel_base=2048 --model d_channel_max=128
                    --model inference_noise=none)
             SHIPPED=weights/stylegan2-celeba64 ;;
  stylegan2-128) ARGS=(--batch-size "${BATCH:-32}" --augment "${AUGMENT-}")
             MODEL=(--model channel_base=2048 --model channel_max=128 --model d_channel_base=2048 --model d_channel_max=128
                    --model inference_noise=none)
             SHIPPED=weights/stylegan2-faces128
             if [ ! -f "$SHIPPED/config.json" ]; then SHIPPED=weights/stylegan2-celeba64; fi ;;
  dcgan) ARGS=(--batch-size "${BATCH:-128}") ; MODEL=() ; SHIPPED=weights/dcgan-celeba64 ;;
  *) echo "unknown family $FAMILY (stylegan2 or dcgan)"; exit 2 ;;
esac
if [ -f "$RUN/state.safetensors" ]; then
  ARGS+=(--resume)                                  # the run keeps its own architecture
else
  INIT=${INIT_FROM:-}
  if [ -z "$INIT" ] && [ -f "$SHIPPED/config.json" ]; then  # the shipped model, if it has this architecture
    "$PY" -m dgf_core train "$TRAINER" "${DATA_ARGS[@]}" --out "$RUN" "${MODEL[@]}" \
        --init-from "$SHIPPED" --dry-run >/dev/null 2>&1 && INIT=$SHIPPED
  fi
  if [ -n "$INIT" ] && [ "$INIT" != none ]; then
    ARGS+=(--init-from "$INIT")   # its folder's architecture
    echo "continuing $INIT"
  else
    ARGS+=("${MODEL[@]}")
  fi
fi
mkdir -p "$(dirname "$RUN")"
nohup nice -n 19 "$PY" -m dgf_core train "$TRAINER" "${COMMON[@]}" "${ARGS[@]}" --out "$RUN" >> "$RUN.out" 2>&1 &
echo $! > "$RUN.pid"
echo "training $FAMILY in $RUN (pid $(cat "$RUN.pid"), log $RUN.out)"
