"""Where int8 dynamic quantisation changes the reader's answers: a sensitivity probe (a report).

Dev questions are asked as the bot asks them (``bot.tuning.read_all``: the top ``K`` passages of the
index); then every variant of the int8 export reads the same passages, and is compared with the fp32
export (which reads exactly as torch does). A variant quantises the weight matrix products of the
reader except one group, which stays fp32 (``all`` also quantises the two activation-by-activation
products of each attention, as ``quantize_dynamic`` does by default). Per variant:

- ``per_passage``: share of passages whose best span is the fp32 one;
- ``per_question``: share of questions whose surest span (best margin over its passage's no-answer
  score, over all passages) is the fp32 one;
- ``time_ratio``: its reading time over fp32's (same passages, same threads).

Why it exists: the fast-reader issue asks the served (int8) reader to give torch's answer for 97% of
the questions; this shows how far each part of the model stands from that on this CPU.

Usage:
    .venv/bin/python bench/probe_int8.py --index var/index              # 80 dev questions, all variants
    .venv/bin/python bench/probe_int8.py --index var/index --limit 40 --variants all weights
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bot.config import SHIPPED_MODEL_DIR
from bot.fusion import margin
from bot.tuning import Observed, read_all
from finetune.export import ensure_export
from finetune.reader import Reader
from finetune.runtime import ONNX, OnnxRuntime
from finetune.squad import load_squad
from finetune.types import Reading

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "data" / "diabetes-qa" / "dev.json"
DOCS = ROOT / "data" / "docs"
K = 8
# Node-name tests of the groups a variant keeps in fp32 (names of the torch.onnx export of BERT).
KEEP_FP32 = {
    "all": lambda name: False,
    "weights": lambda name: False,
    "no-qa-head": lambda name: "qa_outputs" in name,
    "no-ffn-in": lambda name: "intermediate" in name,
    "no-ffn-out": lambda name: "/output/dense" in name and "attention" not in name,
    "no-attn-qkv": lambda name: "/self/" in name,
    "no-attn-out": lambda name: "attention/output/dense" in name,
    "no-layer-0": lambda name: "layer.0/" in name,
    "no-last-layer": lambda name: "layer.5/" in name,
}


def is_activation_product(name: str) -> bool:
    """The attention's QK^T and scores-times-V products (both inputs are activations)."""
    return name.endswith(("self/MatMul", "self/MatMul_1"))


def quantised_variant(fp32: Path, out: Path, variant: str) -> None:
    import onnx  # noqa: PLC0415 - a report: heavy imports where they are used
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    names = [n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "MatMul"]
    keep = KEEP_FP32[variant]
    nodes = [n for n in names if not keep(n) and (variant == "all" or not is_activation_product(n))]
    quantize_dynamic(
        str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=nodes
    )


def read(reader: Reader, questions: dict[str, str], observed: Sequence[Observed]) -> tuple[list, float]:
    readings, seconds = [], 0.0
    for q in observed:
        started = time.perf_counter()
        readings.append(reader.read(questions[q.id], [p.passage.text for p in q.retrieved[:K]], top_k=1))
        seconds += time.perf_counter() - started
    return readings, seconds


def best_span(span_lists: Sequence[Reading]) -> str | None:
    margins = [(margin(s, r), s.text) for r in span_lists for s in r.spans[:1]]
    return max(margins)[1] if margins else None


def first_span(reading: Reading) -> str | None:
    return reading.spans[0].text if reading.spans else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--index", type=Path, default=None, help="a built hybrid index of data/docs")
    parser.add_argument("--limit", type=int, default=80, help="dev questions read")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=list(KEEP_FP32), choices=list(KEEP_FP32))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    observed, _ = read_all(args.model, args.index, DEV, DOCS, args.limit)
    questions = {e.id: e.question for e in load_squad([DEV]).examples}
    reader = Reader(args.model, backend=ONNX, num_threads=args.threads)
    reader.warm_up()
    reference, reference_seconds = read(reader, questions, observed)
    fp32 = ensure_export(args.model, ONNX).path
    with tempfile.TemporaryDirectory(prefix="probe-int8-") as tmp:
        for variant in args.variants:
            path = Path(tmp) / f"{variant}.onnx"
            quantised_variant(fp32, path, variant)
            reader._runtime = OnnxRuntime(path, variant, args.threads)  # the same reader, another graph
            got, seconds = read(reader, questions, observed)
            pairs = [(a, b) for x, y in zip(reference, got, strict=True) for a, b in zip(x, y, strict=True)]
            print(json.dumps({
                "variant": variant,
                "per_passage": round(float(np.mean([first_span(a) == first_span(b) for a, b in pairs])), 3),
                "per_question": round(float(np.mean([best_span(x) == best_span(y)
                                                     for x, y in zip(reference, got, strict=True)])), 3),
                "time_ratio": round(seconds / reference_seconds, 3),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
