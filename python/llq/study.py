"""The study's table on llq's default model, in one command.

    python -m llq.study [--profile smoke|quick|full] [--out DIR] [--tasks DIR]

For every configuration (float; RTN, GPTQ, AWQ at w4/w3/w2 with groups of
128 and per channel at w4, extra g64 rows at w4/w3; SmoothQuant
W8A8/W6A6/W4A4; BiLLM, PB-LLM w1.7/w2, DB-LLM w2-g128, NF4 and NF4-ICQ
at g64, QuIP w2/w3/w4), quantizes the default model with llq-opt (on
calibration text where the method calibrates), then evaluates it with llq-eval: perplexity on the
evaluation text (non-overlapping windows) and on random windows of it (the
C4 protocol), and zero-shot accuracy on the built-in corpus task plus any
lm-evaluation-harness JSONL files in --tasks. Writes table.md, table.csv
and ppl_vs_bits.png. Each configuration's results are cached (result.json
in its folder), so an interrupted run resumes where it stopped.

The default model's weights are already on a 4-bit grid with groups of 32
(its source is a Q4_1 GGUF), so "float" means that grid, and w4 g32-like
configurations are nearly lossless by construction; read the table with
that in mind. Its hidden size is 576: at g128 most layers end with a short
group of 64.
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time

from llq import corpora, evaluate, models

PROFILES = {
    # windows x length for calibration; evaluation length, tokens, random
    # windows; corpus task items; AWQ search windows.
    "smoke": dict(calib_samples=2, calib_seqlen=128, seqlen=256, eval_tokens=2048,
                  c4_windows=2, mc_items=8, search_windows=1,
                  configs=["float", "rtn-w4-g128", "gptq-w4-g128", "awq-w4-g128",
                           "smoothquant-w8a8"], deploy=["awq-w4-g128"]),
    # The README's main job: float vs AWQ w4-g128.
    "main": dict(calib_samples=16, calib_seqlen=512, seqlen=512, eval_tokens=16384,
                 c4_windows=8, mc_items=60, search_windows=1,
                 configs=["float", "awq-w4-g128"], deploy=["awq-w4-g128"]),
    # The whole table on two cores: about an hour for the uniform rows, more
    # with the calibrated binarization and QuIP rows (`--only` picks rows).
    "quick": dict(calib_samples=16, calib_seqlen=512, seqlen=512, eval_tokens=8192,
                  c4_windows=8, mc_items=40, search_windows=1),
    "full": dict(calib_samples=128, calib_seqlen=2048, seqlen=2048, eval_tokens=0,
                 c4_windows=256, mc_items=500, search_windows=4),
}

# Binarization and the other packed formats (llq.packed_linear).
ULTRA_LOW_BIT = ["billm", "pbllm-w1.7", "pbllm-w2", "dbllm-w2-g128", "nf4-g64", "nf4-icq",
                 "quip-w2", "quip-w3", "quip-w4"]

CONFIGS = (["float"]
           + [f"{m}-{s}" for m in ("rtn", "gptq", "awq") for s in ("w4-g128", "w3-g128", "w2-g128", "w4")]
           + ["smoothquant-w8a8", "smoothquant-w6a6", "smoothquant-w4a4"]
           + [f"{m}-{s}" for m in ("rtn", "gptq", "awq") for s in ("w4-g64", "w3-g64")]
           + ULTRA_LOW_BIT)


def log(msg):
    print(f"[study] {msg}", file=sys.stderr, flush=True)


def describe(config):
    """(method, #W/#A/#G) in the study's notation."""
    if config == "float":
        return "float (Q4_1 grid)", "32/32/-"
    if config.startswith("billm"):
        # The paper's 1-bit payload; blocks of 128 (or -g<block>).
        g = next((p[1:] for p in config.split("-")[1:] if p.startswith("g")), "128")
        return "billm", f"1/16/{g}"
    if config.startswith("nf4"):
        g = next((p[1:] for p in config.split("-")[1:] if p.startswith("g")), "64")
        return ("nf4-icq" if "-icq" in config else "nf4"), f"4/16/{g}"
    method, rest = config.split("-", 1)
    parts = rest.split("-")
    w = parts[0][1:]
    a = "16"
    if "a" in w:
        w, a = w.split("a")
    g = next((p[1:] for p in parts[1:] if p.startswith("g")), "-")
    return method, f"{w}/{a}/{g}"


_ELEMENT_BITS = {"f64": 64, "f32": 32, "f16": 16, "bf16": 16, "i64": 64, "i32": 32,
                 "i16": 16, "i8": 8, "ui8": 8, "si8": 8, "i1": 1}


def archive_bytes(ir_path):
    """Bytes of every weight tensor the IR refers to (the deployable weights).

    Counts each distinct (archive, tensor) once from its declared type, so a
    quantized model is not charged for float tensors left unused in the
    archive it shares with the float model.
    """
    import re
    seen = set()
    total = 0
    pattern = re.compile(r'llq\.weight @(\w+)\["([^"]+)"\](?: \{[^}]*\})? : tensor<([^>]*)>')
    with open(ir_path) as f:
        for archive, name, ty in pattern.findall(f.read()):
            if (archive, name) in seen:
                continue
            seen.add((archive, name))
            *dims, element = ty.split("x")
            count = 1
            for d in dims:
                count *= int(d)
            total += (count * _ELEMENT_BITS[element] + 7) // 8
    return total


def effective_bits(report_path):
    """Bits per weight of the quantized layers, from the report's total row."""
    with open(report_path) as f:
        for line in f:
            if line.startswith("| total"):
                cells = [c.strip() for c in line.split("|")]
                return float(cells[6])
    return None


class Study:
    def __init__(self, args):
        self.args = args
        self.profile = PROFILES[args.profile]
        self.out = os.path.abspath(args.out)
        self.build = os.path.abspath(args.build)
        self.tool = lambda name: os.path.join(self.build, "bin", name)
        os.makedirs(self.out, exist_ok=True)

    def prepare(self):
        p = self.profile
        self.model_dir = models.install(self.args.model_dir, log)
        self.tokenizer = os.path.join(self.model_dir, "tokenizer.json")
        self.float_ir = os.path.join(self.model_dir, "model.mlir")
        if not os.path.exists(self.float_ir):
            subprocess.run([self.tool("llq-import"), os.path.join(self.model_dir, "model.onnx"),
                            "-o", self.float_ir], check=True)
        texts = corpora.write(os.path.join(self.build, "corpora"))
        self.eval_text = self.args.eval_text or texts["pydocs-eval.txt"]
        calib_text = self.args.calib_text or texts["fortunes-calib.txt"]
        self.calib_ids = os.path.join(self.out, "calib.ids")
        if not os.path.exists(self.calib_ids):
            need = p["calib_samples"] * p["calib_seqlen"] * 8
            subprocess.run([self.tool("llq-eval"), "tokenize", "--tokenizer", self.tokenizer,
                            "--text", calib_text, "--max-tokens", str(max(need, 65536)),
                            "-o", self.calib_ids], check=True)
        self.tasks = []
        with open(self.eval_text, encoding="utf-8") as f:
            text = f.read()
        # The corpus task is drawn from the text after the evaluated tokens'
        # share, so it never repeats a perplexity window verbatim.
        tail = text[len(text) // 2:] if p["eval_tokens"] else text
        self.tasks.append(("corpus_mc", evaluate.make_corpus_task(tail, p["mc_items"], seed=1)))
        if self.args.tasks:
            for name in sorted(os.listdir(self.args.tasks)):
                if name.endswith(".jsonl"):
                    self.tasks.append(evaluate.load_task(os.path.join(self.args.tasks, name)))

    def quantize(self, config, folder):
        if config == "float":
            return self.float_ir, None, 0.0
        ir = os.path.join(folder, "model.q.mlir")
        report = os.path.join(folder, "report.md")
        p = self.profile
        args = [self.tool("llq-opt"), self.float_ir, f"--quantize={config}", "-o", ir,
                f"--quantize-report={report}"]
        if not config.startswith(("rtn", "dbllm", "nf4")):  # data-free methods
            args += [f"--calib={self.calib_ids}", f"--calib-samples={p['calib_samples']}",
                     f"--calib-seqlen={p['calib_seqlen']}"]
        if config.startswith("awq"):
            args += [f"--awq-search-windows={p['search_windows']}"]
        start = time.time()
        subprocess.run(args, check=True)
        return ir, report, time.time() - start

    def run_config(self, config):
        folder = os.path.join(self.out, config)
        result_path = os.path.join(folder, "result.json")
        if os.path.exists(result_path):
            with open(result_path) as f:
                return json.load(f)
        os.makedirs(folder, exist_ok=True)
        log(f"{config}: quantizing")
        ir, report, qtime = self.quantize(config, folder)
        p = self.profile
        start = time.time()
        log(f"{config}: perplexity")
        wiki = evaluate.perplexity(self.tool("llq-eval"), ir, self.tokenizer, self.eval_text,
                                   p["seqlen"], p["eval_tokens"])
        c4 = evaluate.perplexity(self.tool("llq-eval"), ir, self.tokenizer, self.eval_text,
                                 p["seqlen"], 0, random_windows=p["c4_windows"], seed=1)
        zero_shot = {}
        for name, docs in self.tasks:
            log(f"{config}: zero-shot {name} ({len(docs)} items)")
            zero_shot[name] = evaluate.evaluate_task(self.tool("llq-eval"), ir, self.tokenizer,
                                                     name, docs, workdir=folder)
        method, notation = describe(config)
        result = {
            "config": config, "method": method, "notation": notation,
            "effective_bits": effective_bits(report) if report else 32.0,
            "model_bytes": archive_bytes(ir),
            "ppl": {"eval": wiki["ppl"], "random_windows": c4["ppl"]},
            "eval_tokens": wiki["predicted_tokens"],
            "zero_shot": zero_shot,
            "seconds": {"quantize": round(qtime, 1), "evaluate": round(time.time() - start, 1)},
            "profile": self.args.profile,
        }
        with open(result_path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(result_path + ".tmp", result_path)
        return result

    def run(self):
        self.prepare()
        configs = self.profile.get("configs", CONFIGS)
        if self.args.only:
            configs = [c for c in configs if c in self.args.only.split(",")]
        results = []
        for i, config in enumerate(configs):
            log(f"[{i + 1}/{len(configs)}] {config}")
            results.append(self.run_config(config))
        self.write_table(results)
        for config in self.profile.get("deploy", []):
            if config in configs:
                self.deploy(config)
        return results

    def deploy(self, config):
        """Compiles the quantized model into deployable directories (GPU kernels
        for sm_90 and sm_80, and a host library), runs the host one on a prompt
        from the evaluation text and checks its greedy continuation against the
        interpreter's. Cached in <config>/deploy.json."""
        folder = os.path.join(self.out, config)
        path = os.path.join(folder, "deploy.json")
        if not os.path.exists(path):
            ir = os.path.join(folder, "model.q.mlir")
            cpu, gpu = os.path.join(folder, "deploy-cpu"), os.path.join(folder, "deploy-cuda")
            log(f"{config}: llq-compile (cuda-sm90,cuda-sm80 and cpu)")
            start = time.time()
            subprocess.run([self.tool("llq-compile"), ir, "--target=cuda-sm90,cuda-sm80",
                            "-o", gpu], check=True, capture_output=True)
            subprocess.run([self.tool("llq-compile"), ir, "--target=cpu", "-o", cpu],
                           check=True, capture_output=True)
            compile_s = time.time() - start
            prompt = os.path.join(folder, "prompt.ids")
            subprocess.run([self.tool("llq-eval"), "tokenize", "--tokenizer", self.tokenizer,
                            "--text", self.eval_text, "--max-tokens", "64", "-o", prompt],
                           check=True, capture_output=True)
            with open(prompt) as f:
                ids = ",".join(f.read().split())

            def run(target, *extra):
                log(f"{config}: llq-run {os.path.basename(target)}")
                out = subprocess.run([self.tool("llq-run"), target, *extra, "--tokens", ids,
                                      "--generate", "16", "--time"],
                                     check=True, capture_output=True, text=True)
                text = out.stdout + out.stderr
                rates = re.findall(r"\(([0-9.]+) tok/s\)", text)
                generated = re.search(r"generated:([ 0-9]*)", text).group(1).split()
                return {"prefill_tok_s": float(rates[0]), "decode_tok_s": float(rates[1]),
                        "generated": [int(t) for t in generated]}

            interpreter = run(ir)
            host = run(cpu, "--device", "cpu")
            record = {"config": config, "compile_seconds": round(compile_s, 1),
                      "gpu_dir": gpu, "cpu_dir": cpu, "prompt_tokens": len(ids.split(",")),
                      "interpreter": interpreter, "host_library": host,
                      "same_greedy_tokens": interpreter["generated"] == host["generated"]}
            with open(path + ".tmp", "w") as f:
                json.dump(record, f, indent=1)
            os.replace(path + ".tmp", path)
        with open(path) as f:
            r = json.load(f)
        same = "the same" if r["same_greedy_tokens"] else "NOT the same"
        print(f"\ndeployable {config} (llq-compile, {r['compile_seconds']:.0f} s): "
              f"{r['gpu_dir']} (cubins sm_90/sm_80 + PTX), {r['cpu_dir']} (host library)")
        print(f"  {r['prompt_tokens']}-token prompt, 16 greedy tokens, {same} as the interpreter; "
              f"host library prefill {r['host_library']['prefill_tok_s']:.0f} tok/s, decode "
              f"{r['host_library']['decode_tok_s']:.1f} tok/s (interpreter "
              f"{r['interpreter']['prefill_tok_s']:.0f} / {r['interpreter']['decode_tok_s']:.1f})")

    def write_table(self, results):
        tasks = [name for name, _ in self.tasks]
        header = (["method", "#W/#A/#G", "bits/weight", "model MB", "PPL eval", "PPL random"]
                  + [f"{t} acc" for t in tasks] + [f"{t} acc_norm" for t in tasks]
                  + ["quantize s", "evaluate s"])
        rows = []
        for r in results:
            rows.append([r["method"], r["notation"], f"{r['effective_bits']:.2f}",
                         f"{r['model_bytes'] / 1e6:.1f}", f"{r['ppl']['eval']:.3f}",
                         f"{r['ppl']['random_windows']:.3f}"]
                        + [f"{100 * r['zero_shot'][t]['acc']:.1f}" for t in tasks]
                        + [f"{100 * r['zero_shot'][t]['acc_norm']:.1f}" for t in tasks]
                        + [f"{r['seconds']['quantize']:.0f}", f"{r['seconds']['evaluate']:.0f}"])
        with open(os.path.join(self.out, "table.csv"), "w", newline="") as f:
            csv.writer(f).writerows([header] + rows)
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        with open(os.path.join(self.out, "table.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
        self.compare(results, tasks)
        self.plot(results)

    def compare(self, results, tasks):
        """One line per configuration against the float model."""
        base = next((r for r in results if r["config"] == "float"), None)
        if base is None or len(results) < 2:
            return
        print(f"\nagainst float ({models.DEFAULT_NAME}; its weights are on a Q4_1 grid):")
        for r in results:
            if r is base:
                continue
            ppl, ref = r["ppl"]["eval"], base["ppl"]["eval"]
            parts = [f"PPL {ref:.2f} -> {ppl:.2f} ({100 * (ppl / ref - 1):+.1f}%)"]
            for t in tasks:
                parts.append(f"{t} acc {100 * base['zero_shot'][t]['acc']:.1f} -> "
                             f"{100 * r['zero_shot'][t]['acc']:.1f}")
            parts.append(f"weights {base['model_bytes'] / 1e6:.0f} MB -> "
                         f"{r['model_bytes'] / 1e6:.0f} MB")
            print(f"  {r['config']:<22} " + ", ".join(parts))

    def plot(self, results):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            log("matplotlib is not installed: no plot")
            return
        fig, ax = plt.subplots(figsize=(7, 4.5))
        by_method = {}
        for r in results:
            by_method.setdefault(r["method"], []).append(r)
        for method, rs in sorted(by_method.items()):
            rs = sorted(rs, key=lambda r: r["effective_bits"])
            ax.plot([r["effective_bits"] for r in rs], [r["ppl"]["eval"] for r in rs],
                    "o-", label=method)
        ax.set_xlabel("bits per weight (packed bytes)")
        ax.set_ylabel("perplexity (eval text)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        ax.set_title(f"{models.DEFAULT_NAME}: perplexity vs bits ({self.args.profile} profile)")
        fig.tight_layout()
        fig.savefig(os.path.join(self.out, "ppl_vs_bits.png"), dpi=120)


def main():
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = os.environ.get("LLQ_BUILD_DIR", os.path.join(here, "build"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=PROFILES)
    ap.add_argument("--out", default=None)
    ap.add_argument("--build", default=build)
    ap.add_argument("--model-dir", default=os.path.join(build, "models", models.DEFAULT_NAME))
    ap.add_argument("--tasks", help="folder of lm-evaluation-harness JSONL files")
    ap.add_argument("--eval-text", help="evaluation text (default: the built-in corpus)")
    ap.add_argument("--calib-text", help="calibration text (default: the built-in corpus)")
    ap.add_argument("--only", help="comma-separated configurations to run")
    args = ap.parse_args()
    args.out = args.out or os.path.join(build, "study", args.profile)
    Study(args).run()


if __name__ == "__main__":
    main()
