#!/usr/bin/env bash
# Issue 6's comparison of reader recipes: each is scripts/make_reader.sh with other settings.
# Prints one JSON line per recipe: its settings and its diabetes-dev and general-dev EM/F1.
#   bash bench/compare_recipes.sh                       # every recipe below
#   bash bench/compare_recipes.sh squad8k-lr1e-4 ...    # some of them
# `nomix` (stage 2 without the SQuAD slice) starts from the stage 1 of a full `make reader` run:
# STAGE1_MODEL=runs/reader/stage1. Run it where a GPU is present (minutes); on a CPU it takes hours.
# Stage 3 is off here (STAGE3_EPOCHS=0): these compare stages 1-2. The shipped recipe itself is
# `make reader` (full SQuAD, lr 1e-4, stages 1-3): its scores are in runs/reader.
set -euo pipefail
ROOT=${COMPARE_ROOT:-runs/compare}
# Every recipe uses one split of SQuAD, so the general dev set is identical (SPLIT_DIR may point at
# the split of an earlier `make reader`).
export SPLIT_DIR=${SPLIT_DIR:-$ROOT/split}

settings_of() {
  case $1 in
    diabetes-only)   echo STAGE3_EPOCHS=0 SQUAD_EXAMPLES=-1 STAGE2_SQUAD_MIX_ARTICLES=0 STAGE2_LR=1e-4 STAGE2_EPOCHS=6 ;;
    squad8k-lr5e-5)  echo STAGE3_EPOCHS=0 SQUAD_EXAMPLES=8000 STAGE1_LR=5e-5 STAGE1_EPOCHS=1 ;;
    squad8k-lr1e-4)  echo STAGE3_EPOCHS=0 SQUAD_EXAMPLES=8000 STAGE1_LR=1e-4 STAGE1_EPOCHS=1 ;;
    squad30k-lr1e-4) echo STAGE3_EPOCHS=0 SQUAD_EXAMPLES=30000 STAGE1_LR=1e-4 STAGE1_EPOCHS=1 ;;
    nomix)           echo "STAGE3_EPOCHS=0 STAGE1_MODEL=${STAGE1_MODEL:?nomix needs STAGE1_MODEL} STAGE2_SQUAD_MIX_ARTICLES=0" ;;
    *) echo "compare_recipes: unknown recipe $1" >&2; return 1 ;;
  esac
}

report() {  # name, settings, final-eval.jsonl -> one JSON line
  python3 - "$@" <<'PY'
import json, sys
name, settings, path = sys.argv[1:]
diabetes, general = (json.loads(line) for line in open(path))
print(json.dumps({"recipe": name, "settings": settings,
                  "diabetes_dev": {k: diabetes[k] for k in ("exact_match", "f1")},
                  "general_dev": {k: general[k] for k in ("exact_match", "f1")}}), flush=True)
PY
}

mkdir -p "$ROOT"
recipes=("$@"); [ ${#recipes[@]} -gt 0 ] || recipes=(diabetes-only squad8k-lr5e-5 squad8k-lr1e-4 squad30k-lr1e-4)
for name in "${recipes[@]}"; do
  settings=$(settings_of "$name")
  # shellcheck disable=SC2086
  if env $settings WORK="$ROOT/$name" OUTPUT="$ROOT/$name/final" bash scripts/make_reader.sh >&2; then
    report "$name" "$settings" "$ROOT/$name/final-eval.jsonl"
  else
    echo "{\"recipe\": \"$name\", \"settings\": \"$settings\", \"error\": \"make_reader failed\"}"
  fi
done
