#!/usr/bin/env bash
# Reproduces the shipped reader (models/reader): six `finetune train` runs (stages 4-6 below).
#   Stage 1, general extractive QA: SQuAD v1.1 train minus a few held-out articles (the general dev set).
#   Stage 2, domain: the diabetes train set on top of stage 1, mixed with a slice of SQuAD so the
#   reader keeps its general skill (without it, general dev F1 drops: see models/reader/README.md).
#   Stage 3, domain only: a short, gentle pass on the diabetes train set.
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
DOC_STRIDE=${DOC_STRIDE:-$((MAX_SEQ / 3))}  # window overlap: 128 at the standard length 384
STAGE1_LR=${STAGE1_LR:-1e-4}          # 1e-4 beats 5e-5 from this base (MiniLM has no QA head yet)
STAGE2_LR=${STAGE2_LR:-3e-5}
STAGE2_EPOCHS=${STAGE2_EPOCHS:-3}
STAGE2_BATCH=${STAGE2_BATCH:-32}
STAGE3_LR=${STAGE3_LR:-2e-5}          # stage 3: the domain data alone, gently
STAGE3_EPOCHS=${STAGE3_EPOCHS:-2}      # 0 skips stage 3
STAGE2_SQUAD_MIX_ARTICLES=${STAGE2_SQUAD_MIX_ARTICLES:-10}  # ~2,000 SQuAD questions mixed into stage 2

mkdir -p "$WORK" "$SPLIT_DIR"
echo "make_reader: gpu=$HAS_GPU squad_examples=${SQUAD_EXAMPLES:-all} max_seq=$MAX_SEQ" >&2

# The general dev set: whole articles held out of SQuAD, so no context is on both sides.
SQUAD_TRAIN="$SPLIT_DIR/squad-train.json" SQUAD_DEV="$SPLIT_DIR/squad-dev.json"
[ -s "$SQUAD_DEV" ] || $FINETUNE split "$SQUAD" --dev-articles "$GENERAL_DEV_ARTICLES" \
  --seed "$SEED" --train-out "$SQUAD_TRAIN" --dev-out "$SQUAD_DEV"

# Optional caps, for a quick trial of the recipe (0 = everything).
STAGE2_EXAMPLES=${STAGE2_EXAMPLES:-0} DEV_EXAMPLES=${DEV_EXAMPLES:-0} EVAL_LIMIT=${EVAL_LIMIT:-0}
cap() { [ "$2" -gt 0 ] && echo "$1 $2" || true; }  # "--option N" when N > 0

# Stage 1. A finished stage (metrics.json present) is kept, so an interrupted `make reader` resumes;
# an interrupted stage resumes from its last checkpoint (--resume).
stage2_base="$WORK/stage1"
if [ -n "${STAGE1_MODEL:-}" ]; then       # reuse a stage 1 trained before
  stage2_base="$STAGE1_MODEL"
elif [ "$SQUAD_EXAMPLES" -lt 0 ]; then   # SQUAD_EXAMPLES=-1: no stage 1 (the diabetes-only baseline)
  stage2_base="$BASE_MODEL"
elif [ ! -s "$WORK/stage1/metrics.json" ]; then
  # shellcheck disable=SC2046
  $FINETUNE train --data "$SQUAD_TRAIN" --dev "$SQUAD_DEV" --output "$WORK/stage1" \
    --base-model "$BASE_MODEL" --epochs "$STAGE1_EPOCHS" --learning-rate "$STAGE1_LR" \
    --max-seq-length "$MAX_SEQ" --doc-stride "$DOC_STRIDE" --seed "$SEED" $(cap --max-train-examples "$SQUAD_EXAMPLES") \
    $(cap --max-dev-examples "$DEV_EXAMPLES") --resume --json > "$WORK/stage1.json"
fi

# Stage 2: the diabetes set, plus whole SQuAD training articles (never dev ones) against forgetting.
mix=()
if [ "$STAGE2_SQUAD_MIX_ARTICLES" -gt 0 ]; then
  [ -s "$WORK/squad-mix.json" ] || $FINETUNE split "$SQUAD_TRAIN" --dev-articles "$STAGE2_SQUAD_MIX_ARTICLES" \
    --seed "$SEED" --train-out "$WORK/squad-rest.json" --dev-out "$WORK/squad-mix.json"
  rm -f "$WORK/squad-rest.json"
  mix=(--data "$WORK/squad-mix.json")
fi
if [ ! -s "$WORK/stage2/metrics.json" ]; then
  # shellcheck disable=SC2046
  $FINETUNE train --data "$DIABETES_TRAIN" "${mix[@]}" --dev "$DIABETES_DEV" --output "$WORK/stage2" \
    --base-model "$stage2_base" --epochs "$STAGE2_EPOCHS" --learning-rate "$STAGE2_LR" --batch-size "$STAGE2_BATCH" \
    --max-seq-length "$MAX_SEQ" --doc-stride "$DOC_STRIDE" --seed "$SEED" --save-dtype float16 \
    $(cap --max-train-examples "$STAGE2_EXAMPLES") $(cap --max-dev-examples "$DEV_EXAMPLES") \
    --resume --json > "$WORK/stage2.json"
fi

# Stage 3: the diabetes set alone at a lower learning rate. Stage 2's mix keeps general skill but
# dilutes the domain; this short pass adds ~3.5 diabetes-dev F1 at a cost of ~0.5 general-dev F1.
final="$WORK/stage2"
if [ "$STAGE3_EPOCHS" != 0 ]; then
  final="$WORK/stage3"
  if [ ! -s "$WORK/stage3/metrics.json" ]; then
    # shellcheck disable=SC2046
    $FINETUNE train --data "$DIABETES_TRAIN" --dev "$DIABETES_DEV" --output "$WORK/stage3" \
      --base-model "$WORK/stage2" --epochs "$STAGE3_EPOCHS" --learning-rate "$STAGE3_LR" \
      --max-seq-length "$MAX_SEQ" --doc-stride "$DOC_STRIDE" --seed "$SEED" --save-dtype float16 \
      $(cap --max-train-examples "$STAGE2_EXAMPLES") $(cap --max-dev-examples "$DEV_EXAMPLES") \
      --resume --json > "$WORK/stage3.json"
  fi
fi

# Stage 4: a reader that can say "this passage does not answer" (issue "Right answers to members' own
# questions"). Unanswerable twins from scripts/make_unanswerable.py (each question with its paragraph
# minus the answer sentences, or with the best BM25 paragraph that lacks the answer: of its SQuAD
# article, or of the bundled documents for diabetes questions, never a dev document), mixed about 1:1
# with answerable questions, 2 epochs at lr 3e-5 from stage 3. ~73 minutes on the 2-core CPU.
STAGE4_EPOCHS=${STAGE4_EPOCHS:-2}     # 0 skips stage 4
STAGE4_LR=${STAGE4_LR:-3e-5}
STAGE4_SQUAD_ARTICLES=${STAGE4_SQUAD_ARTICLES:-24}   # ~4,000 answerable SQuAD questions
STAGE4_SQUAD_NEGATIVES=${STAGE4_SQUAD_NEGATIVES:-3000}
if [ "$STAGE4_EPOCHS" != 0 ]; then
  base4="$final"
  final="$WORK/stage4"
  if [ ! -s "$WORK/stage4/metrics.json" ]; then
    MAKE_NEG=${MAKE_NEG:-"python3 scripts/make_unanswerable.py"}
    [ -s "$WORK/stage4-squad.json" ] || $FINETUNE split "$SQUAD_TRAIN" --dev-articles "$STAGE4_SQUAD_ARTICLES" \
      --seed "$SEED" --train-out "$WORK/stage4-rest.json" --dev-out "$WORK/stage4-squad.json"
    rm -f "$WORK/stage4-rest.json"
    $MAKE_NEG squad "$SQUAD_TRAIN" --questions "$STAGE4_SQUAD_NEGATIVES" --seed "$SEED" --out "$WORK/stage4-squad-neg.json"
    $MAKE_NEG docs "$DIABETES_TRAIN" --docs data/docs --exclude-docs data/diabetes-qa/dev_docs.txt \
      --per-question 1 --seed "$SEED" --out "$WORK/stage4-diabetes-neg.json"
    $FINETUNE train --data "$DIABETES_TRAIN" --data "$WORK/stage4-diabetes-neg.json" \
      --data "$WORK/stage4-squad.json" --data "$WORK/stage4-squad-neg.json" --dev "$DIABETES_DEV" \
      --output "$WORK/stage4" --base-model "$base4" --epochs "$STAGE4_EPOCHS" --learning-rate "$STAGE4_LR" \
      --max-seq-length "$MAX_SEQ" --doc-stride "$DOC_STRIDE" --seed "$SEED" --save-dtype float16 \
      --resume --json > "$WORK/stage4.json"
  fi
fi

# Stage 5: members' own questions. The diabetes train set grew (batch 7: 1,109 member-style questions);
# one epoch at lr 2e-5 from stage 4 on it, its unanswerable twins (1,800 sampled) and a small SQuAD
# replay (6 articles and 1,000 sampled twins) against forgetting, length 256. ~27 minutes on the CPU.
# One epoch: a second one (lr 1e-5, seed 14, from this model) raised diabetes dev F1 from 51.2 to 53.2
# but made the bot worse end to end (bench/tune_engine.py: 27.9% answered right out of fold at 80%
# precision vs 29.0%; held out by document 21.0% vs 26.6%); its confidence separates right from wrong
# answers less well.
STAGE5_EPOCHS=${STAGE5_EPOCHS:-1}     # 0 skips stage 5
STAGE5_LR=${STAGE5_LR:-2e-5}
STAGE5_MAX_SEQ=${STAGE5_MAX_SEQ:-256}  # 791 of the 827 bundled passages fit one window with a question
# One members' stage (5 and 6): diabetes questions, a sample of their unanswerable twins, stage 4's SQuAD
# articles cut to 6 and some SQuAD twins, from the previous stage, at stage 5's settings.
# Usage: member_stage NAME BASE DIABETES_FILE DIABETES_TWINS SQUAD_TWINS SQUAD_TWINS_SEED EPOCHS
member_stage() {
  local name=$1 base=$2 data=$3 twins=$4 squad_twins=$5 squad_seed=$6 epochs=$7
  MAKE_NEG=${MAKE_NEG:-"python3 scripts/make_unanswerable.py"}
  $MAKE_NEG docs "$data" --docs data/docs --exclude-docs data/diabetes-qa/dev_docs.txt \
    --per-question 1 --seed "$SEED" --sample "$twins" --out "$WORK/$name-diabetes-neg.json"
  [ -s "$WORK/stage5-squad.json" ] || $FINETUNE split "$WORK/stage4-squad.json" --dev-articles 6 \
    --seed "$SEED" --train-out "$WORK/stage5-rest.json" --dev-out "$WORK/stage5-squad.json"
  rm -f "$WORK/stage5-rest.json"
  $MAKE_NEG squad "$SQUAD_TRAIN" --questions "$squad_twins" --seed "$squad_seed" --out "$WORK/$name-squad-neg.json"
  $FINETUNE train --data "$data" --data "$WORK/$name-diabetes-neg.json" \
    --data "$WORK/stage5-squad.json" --data "$WORK/$name-squad-neg.json" --dev "$DIABETES_DEV" \
    --output "$WORK/$name" --base-model "$base" --epochs "$epochs" --learning-rate "$STAGE5_LR" \
    --max-seq-length "$STAGE5_MAX_SEQ" --doc-stride $((STAGE5_MAX_SEQ / 3)) --seed "$SEED" --save-dtype float16 \
    --resume --json > "$WORK/$name.json"
}
if [ "$STAGE5_EPOCHS" != 0 ]; then
  base5="$final"
  final="$WORK/stage5"
  if [ ! -s "$WORK/stage5/metrics.json" ]; then
    member_stage stage5 "$base5" "$DIABETES_TRAIN" 1800 1000 $((SEED + 1)) "$STAGE5_EPOCHS"
  fi
fi

# Stage 6: more members' own questions (data/diabetes-qa/later/: 824 member-style ones, 87 train documents),
# less those whose answer is the answer of a test or calibration question in the same paragraph text (so
# the member test and the calibration still ask about facts the reader was not taught): 538 questions,
# with few unanswerable twins (250, and 306 SQuAD ones beside the 762 SQuAD questions stage 5 replayed),
# 1 epoch at lr 2e-5 from stage 5: ~4 minutes on the 2-core CPU. Tried beside it (models/reader/README.md):
# as many twins as questions (766 + 919), after which the reader said "an answer is here" less often where
# it read the gold passage; and stage 5's whole data again with batch 8 (16 minutes, no better).
STAGE6_EPOCHS=${STAGE6_EPOCHS:-1}     # 0 skips stage 6
# One later batch's stage (6 and 7): its questions as `build.py untaught` gives them, 250 twins, 330 SQuAD
# twins, from the previous stage. Usage: later_stage NAME FOLDER SQUAD_TWINS_SEED EPOCHS
later_stage() {
  local name=$1 folder=$2 squad_seed=$3 epochs=$4 base="$final"
  final="$WORK/$name"
  if [ ! -s "$WORK/$name/metrics.json" ]; then
    python3 data/diabetes-qa/build.py untaught "$folder" "$WORK/$name-diabetes.json"
    member_stage "$name" "$base" "$WORK/$name-diabetes.json" 250 330 "$squad_seed" "$epochs"
  fi
}
if [ "$STAGE6_EPOCHS" != 0 ]; then
  later_stage stage6 later $((SEED + 2)) "$STAGE6_EPOCHS"
fi

# Stage 7, opt-in (STAGE7_EPOCHS=1): a further batch of members' own questions (data/diabetes-qa/later2/:
# batch 9, 895 member-style ones on the 87 train documents, written around the test and calibration
# answers, so none is left out), at stage 6's settings from stage 6, with its own twins and SQuAD twins
# (seed SEED + 3). ~6 minutes on the 2-core CPU. Measured and not shipped (models/reader/README.md):
# diabetes dev F1 57.1 against stage 6's 51.8 (int8, null_threshold 0), but end to end no better
# (bench/tune_engine.py: 22.1% of the 880 dev and calibration questions answered right out of fold at 80%
# precision, 5 passages, against 25.9%; member test 20.9% against 23.3%), nor with training seed 14,
# 450 twins, or averaged with stage 6's weights.
STAGE7_EPOCHS=${STAGE7_EPOCHS:-0}     # 0 (the default) skips stage 7
if [ "$STAGE7_EPOCHS" != 0 ]; then
  later_stage stage7 later2 $((SEED + 3)) "$STAGE7_EPOCHS"
fi

for dev in "$DIABETES_DEV" "$SQUAD_DEV"; do
  # shellcheck disable=SC2046
  $FINETUNE evaluate --model "$final" --data "$dev" $(cap --limit "$EVAL_LIMIT") --json
done > "$WORK/final-eval.jsonl"

rm -rf "$OUTPUT.new" && mkdir -p "$(dirname "$OUTPUT")" && cp -r "$final" "$OUTPUT.new"
rm -rf "$OUTPUT" && mv "$OUTPUT.new" "$OUTPUT"
echo "make_reader: wrote $OUTPUT; dev scores: $(tr '\n' ' ' < "$WORK/final-eval.jsonl")" >&2
