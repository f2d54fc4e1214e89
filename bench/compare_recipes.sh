#!/usr/bin/env bash
# Issue 6's comparison of reader recipes, each a run of scripts/make_reader.sh with other settings.
# Prints one JSON line per recipe: its stage-1 settings and the diabetes-dev and general-dev scores.
# Run it where a GPU is present (minutes); on a CPU it takes hours. Extra environment passes through.
set -euo pipefail
ROOT=${COMPARE_ROOT:-runs/compare}
run() {  # name, then VAR=value settings for make_reader.sh
  local name=$1; shift
  env "$@" WORK="$ROOT/$name" OUTPUT="$ROOT/$name/final" bash scripts/make_reader.sh >&2 || {
    echo "{\"recipe\": \"$name\", \"error\": \"failed\"}"; return 0; }
  python3 - "$name" "$ROOT/$name/final-eval.jsonl" "$*" <<'PY'
import json, sys
name, path, settings = sys.argv[1:]
diabetes, general = (json.loads(line) for line in open(path))
print(json.dumps({"recipe": name, "settings": settings,
                  "diabetes_dev": {k: diabetes[k] for k in ("exact_match", "f1")},
                  "general_dev": {k: general[k] for k in ("exact_match", "f1")}}))
PY
}
mkdir -p "$ROOT"
# Every recipe uses one split of SQuAD, so the general dev set is identical (SPLIT_DIR may point at
# the split of an earlier `make reader`).
export SPLIT_DIR=${SPLIT_DIR:-$ROOT/split}
run diabetes-only   SQUAD_EXAMPLES=-1   STAGE2_SQUAD_MIX=0 STAGE2_LR=1e-4 STAGE2_EPOCHS=6
run squad8k-lr5e-5  SQUAD_EXAMPLES=8000  STAGE1_LR=5e-5 STAGE1_EPOCHS=1
run squad8k-lr1e-4  SQUAD_EXAMPLES=8000  STAGE1_LR=1e-4 STAGE1_EPOCHS=1
run squad30k-lr1e-4 SQUAD_EXAMPLES=30000 STAGE1_LR=1e-4 STAGE1_EPOCHS=1
