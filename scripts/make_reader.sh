#!/usr/bin/env bash
# Reproduces the shipped reader (models/reader): two `finetune train` runs.
#   Stage 1, general extractive QA: SQuAD v1.1 train minus a few held-out articles (the general dev set).
#   Stage 2, domain: the diabetes train set on top of stage 1, mixed with a slice of SQuAD so the
#   reader keeps its general skill (without it, general dev F1 drops: see models/reader/README.md).
# On a GPU the full SQuAD stage takes minutes; on a CPU it takes hours, so without a GPU stage 1 uses
# a subset unless SQUAD_EXAMPLES says otherwise. Every setting below can be overridden from the
# environment, e.g. `SQUAD_EXAMPLES=8000 make reader`.
set -euo pipefail

FINETUNE=${FINETUNE:-finetune}                       # on a machine without the package: "python3 -m finetune.cli"
SQUAD=${SQUAD:-../shared/data/squad-train-v1.1.json.gz}
BASE_MODEL=${BASE_MODEL:-minilm}
WORK=${WORK:-runs/reader}
OUTPUT=${OUTPUT:-models/reader}
DIABETES_TRAIN=${DIABETES_TRAIN:-data/diabetes-qa/train.json}
DIABETES_DEV=${DIABETES_DEV:-data/diabetes-qa/dev.json}
GENERAL_DEV_ARTICLES=${GENERAL_DEV_ARTICLES:-12}
SEED=${SEED:-13}
SPLIT_DIR=${SPLIT_DIR:-$WORK}                        # where the SQuAD train/dev split is kept (shareable)

if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  HAS_GPU=1
  # Full SQuAD, sequence length 384 (the standard), batch 32: ~1 minute an epoch on one H100.
  SQUAD_EXAMPLES=${SQUAD_EXAMPLES:-0} MAX_SEQ=${MAX_SEQ:-384} STAGE1_EPOCHS=${STAGE1_EPOCHS:-2}
else
  HAS_GPU=0
  # CPU (bf16 where supported): ~10 features/s at length 256, so 8,000 questions is ~15 minutes an epoch.
  SQUAD_EXAMPLES=${SQUAD_EXAMPLES:-8000} MAX_SEQ=${MAX_SEQ:-256} STAGE1_EPOCHS=${STAGE1_EPOCHS:-1}
fi
STAGE1_LR=${STAGE1_LR:-1e-4}          # 1e-4 beats 5e-5 from this base (MiniLM has no QA head yet)
STAGE2_LR=${STAGE2_LR:-3e-5}
STAGE2_EPOCHS=${STAGE2_EPOCHS:-3}
STAGE2_SQUAD_MIX=${STAGE2_SQUAD_MIX:-2000}  # SQuAD questions mixed into stage 2 against forgetting

mkdir -p "$WORK" "$SPLIT_DIR"
echo "make_reader: gpu=$HAS_GPU squad_examples=${SQUAD_EXAMPLES:-all} max_seq=$MAX_SEQ" >&2

# The general dev set: whole articles held out of SQuAD, so no context is on both sides.
SQUAD_TRAIN="$SPLIT_DIR/squad-train.json" SQUAD_DEV="$SPLIT_DIR/squad-dev.json"
[ -s "$SQUAD_DEV" ] || $FINETUNE split "$SQUAD" --dev-articles "$GENERAL_DEV_ARTICLES" \
  --seed "$SEED" --train-out "$SQUAD_TRAIN" --dev-out "$SQUAD_DEV"

limit=(); [ "$SQUAD_EXAMPLES" -gt 0 ] && limit=(--max-train-examples "$SQUAD_EXAMPLES")
stage2_base="$WORK/stage1"
if [ "$SQUAD_EXAMPLES" -lt 0 ]; then   # SQUAD_EXAMPLES=-1: no stage 1 (the diabetes-only baseline)
  stage2_base="$BASE_MODEL"
else
$FINETUNE train --data "$SQUAD_TRAIN" --dev "$SQUAD_DEV" --output "$WORK/stage1" \
  --base-model "$BASE_MODEL" --epochs "$STAGE1_EPOCHS" --learning-rate "$STAGE1_LR" \
  --max-seq-length "$MAX_SEQ" --seed "$SEED" "${limit[@]}" --resume --json > "$WORK/stage1.json"
fi

# The SQuAD slice for stage 2 is a seeded sample of the same training articles (never the dev ones).
mix=()
if [ "$STAGE2_SQUAD_MIX" -gt 0 ]; then
  $FINETUNE split "$SQUAD_TRAIN" --dev-articles 0 --max-questions "$STAGE2_SQUAD_MIX" \
    --seed "$SEED" --train-out "$WORK/squad-mix.json"
  mix=(--data "$WORK/squad-mix.json")
fi
$FINETUNE train --data "$DIABETES_TRAIN" "${mix[@]}" --dev "$DIABETES_DEV" \
  --output "$WORK/stage2" --base-model "$stage2_base" --epochs "$STAGE2_EPOCHS" \
  --learning-rate "$STAGE2_LR" --max-seq-length "$MAX_SEQ" --seed "$SEED" --save-dtype float16 \
  --resume --json > "$WORK/stage2.json"

for dev in "$DIABETES_DEV" "$SQUAD_DEV"; do
  $FINETUNE evaluate --model "$WORK/stage2" --data "$dev" --json
done > "$WORK/final-eval.jsonl"

rm -rf "$OUTPUT.new" && cp -r "$WORK/stage2" "$OUTPUT.new" && rm -rf "$OUTPUT" && mv "$OUTPUT.new" "$OUTPUT"
echo "make_reader: wrote $OUTPUT; dev scores: $(tr '\n' ' ' < "$WORK/final-eval.jsonl")" >&2
