"""Perplexity of the default model: llq-eval against transformers.

Tokenizes the start of a text with Hugging Face `tokenizers` (the converted
tokenizer.json), then computes perplexity over non-overlapping windows of
those same token ids twice: with `llq-eval ppl --ids` (llq's import of the
converted ONNX model, on llq's CPU path) and with transformers loading the
original GGUF file (LlamaForCausalLM, float32). Exits non-zero when they
differ by more than --tolerance (default 0.5%).

Needs torch and transformers (scripts/setup-oracle.sh):

    .venv-oracle/run python/tools/oracle_ppl.py [--tokens 4096 --seqlen 512]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

from llq import corpora, models  # noqa: E402


def transformers_nll(gguf, ids, seqlen):
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf),
                                                 gguf_file=os.path.basename(gguf),
                                                 torch_dtype=torch.float32)
    model.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - seqlen + 1, seqlen):
            window = torch.tensor([ids[start:start + seqlen]])
            logits = model(window).logits[0].double()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            nll -= logp.gather(1, window[0, 1:, None]).sum().item()
            count += seqlen - 1
    return nll, count


def main():
    build = os.environ.get("LLQ_BUILD_DIR", os.path.join(ROOT, "build"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=os.path.join(build, "models", models.DEFAULT_NAME))
    ap.add_argument("--text", help="text to evaluate (default: the built-in evaluation corpus)")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--tolerance", type=float, default=0.005)
    args = ap.parse_args()

    from tokenizers import Tokenizer
    model_dir = models.install(args.model_dir)
    ir = os.path.join(model_dir, "model.mlir")
    if not os.path.exists(ir):
        subprocess.run([os.path.join(build, "bin", "llq-import"),
                        os.path.join(model_dir, "model.onnx"), "-o", ir], check=True)
    text_path = args.text or corpora.write(os.path.join(build, "corpora"))["pydocs-eval.txt"]
    with open(text_path, encoding="utf-8") as f:
        text = f.read(args.tokens * 8)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    ids = tok.encode(text).ids[:args.tokens]

    with tempfile.TemporaryDirectory() as tmp:
        ids_path = os.path.join(tmp, "ids.txt")
        with open(ids_path, "w") as f:
            f.write(" ".join(map(str, ids)))
        out = subprocess.run([os.path.join(build, "bin", "llq-eval"), "ppl", ir, "--ids", ids_path,
                              "--seqlen", str(args.seqlen), "--json"],
                             check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    nll, count = transformers_nll(models.default_gguf(), ids, args.seqlen)
    want = math.exp(nll / count)
    diff = abs(got["ppl"] - want) / want
    print(f"tokens {len(ids)}, windows of {args.seqlen}, predicted {count}")
    print(f"llq-eval      ppl {got['ppl']:.4f}")
    print(f"transformers  ppl {want:.4f}")
    print(f"relative difference {100 * diff:.4f}% (tolerance {100 * args.tolerance:.2f}%)")
    return 0 if diff <= args.tolerance and got["predicted_tokens"] == count else 1


if __name__ == "__main__":
    sys.exit(main())
