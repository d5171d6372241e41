"""CPU speed of a LLaMA-shaped model: llq vs ONNX Runtime, same ONNX file.

Builds a model with random weights (default: SmolLM2-135M's shape: hidden
576, 30 layers, 9 query / 3 key-value heads, SwiGLU 1536, vocabulary 49152),
then times, for each engine, a 512-token prefill and 32 greedy decode steps
through the KV cache. Prints a table with tokens/s and llq's ratio to ORT.

    python bench/cpu_llama.py [--preset smollm2-135m|llama-1b-ish] [--prompt 512] [--decode 32]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
from llq import onnx_llama  # noqa: E402

PRESETS = {
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                         num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, rope_theta=100000.0,
                         tie_word_embeddings=True),
    "llama-1b-ish": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                         num_hidden_layers=8, num_attention_heads=32,
                         num_key_value_heads=4, rope_theta=500000.0),
}


def run_ort(path, prompt, decode, threads):
    import onnxruntime as ort
    from llq.ortref import OrtLM
    lm = OrtLM(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    lm.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    lm.forward(prompt[:8])  # warm up
    lm.reset()
    t0 = time.perf_counter()
    logits = lm.forward(prompt)
    t1 = time.perf_counter()
    for _ in range(decode):
        logits = lm.forward([int(np.argmax(logits[0, -1]))])
    t2 = time.perf_counter()
    return len(prompt) / (t1 - t0), decode / (t2 - t1)


def run_llq(path, prompt, decode, threads, build, tmp):
    ir = os.path.join(tmp, "model.mlir")
    subprocess.run([os.path.join(build, "bin", "llq-import"), path, "-o", ir], check=True)
    r = subprocess.run([os.path.join(build, "bin", "llq-run"), ir, "--tokens",
                        ",".join(map(str, prompt)), "--generate", str(decode),
                        "--time", f"--num-threads={threads}"],
                       check=True, capture_output=True, text=True)
    m = re.search(r"prefill \d+ tokens [\d.]+ s \(([\d.]+) tok/s\).*decode \d+ tokens "
                  r"[\d.]+ s \(([\d.]+) tok/s\)", r.stderr)
    if not m:
        raise RuntimeError(r.stderr)
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smollm2-135m", choices=PRESETS)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--build", default=os.environ.get("LLQ_BUILD_DIR", os.path.join(ROOT, "build")))
    args = ap.parse_args()
    cfg = onnx_llama.LlamaConfig(**PRESETS[args.preset])
    rng = np.random.default_rng(0)
    prompt = rng.integers(0, cfg.vocab_size, args.prompt).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx_llama.build(cfg, onnx_llama.random_weights(cfg), path)
        ort_pre, ort_dec = run_ort(path, prompt, args.decode, args.threads)
        llq_pre, llq_dec = run_llq(path, prompt, args.decode, args.threads, args.build, tmp)
    print(f"model: {args.preset} (random weights), prompt {args.prompt}, decode "
          f"{args.decode}, {args.threads} threads")
    print("| engine | prefill tok/s | decode tok/s |")
    print("|---|---:|---:|")
    print(f"| onnxruntime | {ort_pre:.1f} | {ort_dec:.1f} |")
    print(f"| llq (CPU path) | {llq_pre:.1f} | {llq_dec:.1f} |")
    print(f"| llq / onnxruntime | {llq_pre / ort_pre:.2f}x | {llq_dec / ort_dec:.2f}x |")


if __name__ == "__main__":
    main()
