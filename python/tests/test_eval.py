"""llq-eval and the evaluation harness against ONNX Runtime.

Perplexity (non-overlapping windows, remainder dropped) and continuation
log-likelihoods (with and without a KV cache, with shared contexts reusing
the cache) are recomputed in float64 from ONNX Runtime's logits on the same
token ids. The tokenizer is checked against Hugging Face `tokenizers`, and
the harness's task layouts and accuracy rules on small documents.
"""

import json
import math
import os
import subprocess

import numpy as np
import pytest

from llq import evaluate
from llq.ortref import OrtLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "Fixtures", "onnx")
TOKENIZERS = os.path.join(ROOT, "unittests", "Tokenizer", "Inputs")


@pytest.fixture(scope="session")
def llq_eval():
    from conftest import tool
    return tool("llq-eval")


@pytest.fixture(scope="module")
def imported(llq_import, tmp_path_factory):
    out = {}
    folder = tmp_path_factory.mktemp("eval-models")
    for name in ("llama3-gqa", "llama3-gqa-kv"):
        ir = folder / f"{name}.mlir"
        subprocess.run([llq_import, os.path.join(FIXTURES, f"{name}.onnx"), "-o", str(ir)],
                       check=True)
        out[name] = str(ir)
    return out


@pytest.fixture(scope="module")
def byte_tokenizer(tmp_path_factory):
    """A byte-level tokenizer without merges: every byte is one token, so
    ids fit the fixtures' 256-entry vocabulary."""
    from tokenizers import Tokenizer, decoders, models
    from tokenizers.pre_tokenizers import ByteLevel
    vocab = {c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tok.save(str(path))
    return str(path), tok


def log_softmax(row):
    row = row.astype(np.float64)
    m = row.max()
    return row - m - math.log(np.exp(row - m).sum())


def reference_nll(onnx, ids, seqlen):
    ref = OrtLM(onnx)
    nll, count = 0.0, 0
    for start in range(0, len(ids) - seqlen + 1, seqlen):
        window = ids[start:start + seqlen]
        ref.reset()
        logits = ref.forward(window)[0]
        for j in range(seqlen - 1):
            nll -= log_softmax(logits[j])[window[j + 1]]
        count += seqlen - 1
    return nll, count


@pytest.mark.parametrize("name", ["llama3-gqa", "llama3-gqa-kv"])
def test_perplexity_matches_onnxruntime(llq_eval, imported, tmp_path, name):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 256, size=3 * 16 + 5).tolist()  # 3 windows, 5 left over
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(map(str, ids[:20])) + "\n" + ",".join(map(str, ids[20:])))
    out = subprocess.run([llq_eval, "ppl", imported[name], "--ids", str(ids_file),
                          "--seqlen", "16", "--json"], check=True, capture_output=True,
                         text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    nll, count = reference_nll(os.path.join(FIXTURES, f"{name}.onnx"), ids, 16)
    assert got["windows"] == 3 and got["predicted_tokens"] == count == 45
    assert got["text_tokens"] == len(ids)
    assert abs(got["nll"] - nll) <= 1e-4 * abs(nll)
    assert abs(got["ppl"] - math.exp(nll / count)) <= 1e-4 * got["ppl"]


def test_random_windows_are_seeded(llq_eval, imported, tmp_path):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(" ".join(str(i % 256) for i in range(0, 7 * 200, 7)))

    def run(seed):
        out = subprocess.run([llq_eval, "ppl", imported["llama3-gqa"], "--ids", str(ids_file),
                              "--seqlen", "24", "--random-windows", "5", "--seed", str(seed),
                              "--json"], check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    a, b, c = run(1), run(1), run(2)
    assert a["windows"] == 5 and a["predicted_tokens"] == 5 * 23
    assert a["nll"] == b["nll"]
    assert a["nll"] != c["nll"]


REQUESTS = [  # shared contexts exercise the key/value cache reuse
    ("The cat sat on the", " mat"),
    ("The cat sat on the", " roof of the house"),
    ("The cat sat on the", " x"),
    ("Numbers: 1, 2, 3,", " 4, 5"),
    ("The cat sat on the", " mat"),
]


@pytest.mark.parametrize("name", ["llama3-gqa", "llama3-gqa-kv"])
def test_score_matches_onnxruntime(llq_eval, imported, byte_tokenizer, tmp_path, name):
    path, tok = byte_tokenizer
    req = tmp_path / "requests.jsonl"
    req.write_text("".join(json.dumps({"context": c, "continuation": k}) + "\n"
                           for c, k in REQUESTS))
    out = tmp_path / "scores.jsonl"
    subprocess.run([llq_eval, "score", imported[name], "--tokenizer", path,
                    "--requests", str(req), "-o", str(out)], check=True)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(got) == len(REQUESTS)
    ref = OrtLM(os.path.join(FIXTURES, f"{name}.onnx"))
    for (ctx, cont), g in zip(REQUESTS, got):
        c, k = tok.encode(ctx).ids, tok.encode(cont).ids
        ref.reset()
        logits = ref.forward(c + k[:-1])[0]
        rows = [log_softmax(logits[len(c) - 1 + j]) for j in range(len(k))]
        want = sum(r[t] for r, t in zip(rows, k))
        greedy = all(int(np.argmax(r)) == t for r, t in zip(rows, k))
        assert g["tokens"] == len(k)
        assert abs(g["logprob"] - want) <= 1e-4 * max(1.0, abs(want)), (ctx, cont)
        assert g["greedy"] == greedy


def test_tokenize_matches_hugging_face(llq_eval, tmp_path):
    from tokenizers import Tokenizer
    path = os.path.join(TOKENIZERS, "smollm2.json")
    text = ("Héllo wörld!  Tabs\tand   runs of spaces\n\n\n12345 + 0.25 = ?\n"
            "Überlänge: Donaudampfschifffahrtsgesellschaftskapitän. 東京 🙂 "
            "it's they'll  I'M   \r\n x")
    src = tmp_path / "text.txt"
    src.write_text(text, encoding="utf-8")
    out = subprocess.run([llq_eval, "tokenize", "--tokenizer", path, "--text", str(src)],
                         check=True, capture_output=True, text=True).stdout
    want = Tokenizer.from_file(path).encode(text).ids
    assert [int(t) for t in out.split()] == want


def test_bad_input_is_reported(llq_eval, imported, tmp_path):
    bad = tmp_path / "ids.txt"
    bad.write_text("1 2 three 4")
    r = subprocess.run([llq_eval, "ppl", imported["llama3-gqa"], "--ids", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "ids.txt" in r.stderr and "'three'" in r.stderr
    r = subprocess.run([llq_eval, "score", imported["llama3-gqa"], "--requests", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--tokenizer" in r.stderr
    bad.write_text("1 2 3 4000 5")
    r = subprocess.run([llq_eval, "ppl", imported["llama3-gqa"], "--ids", str(bad),
                        "--seqlen", "5"], capture_output=True, text=True)
    assert r.returncode != 0 and "out of range" in r.stderr


def test_task_layouts():
    reqs, gold, texts = evaluate.requests_for(
        "piqa", {"goal": "Open a jar", "sol1": "twist", "sol2": "bite", "label": 0})
    assert reqs == [("Question: Open a jar\nAnswer:", " twist"),
                    ("Question: Open a jar\nAnswer:", " bite")] and gold == 0
    reqs, gold, _ = evaluate.requests_for(
        "arc_easy", {"question": "Q?", "choices": {"text": ["a", "b", "c"],
                                                    "label": ["A", "B", "C"]},
                     "answerKey": "C"})
    assert reqs[2] == ("Question: Q?\nAnswer:", " c") and gold == 2
    reqs, gold, _ = evaluate.requests_for(
        "hellaswag", {"activity_label": "Cooking", "ctx_a": "A man cuts.",
                      "ctx_b": "then he", "endings": ["eats [title] it.", "sleeps."],
                      "label": "1"})
    assert reqs[0] == ("Cooking: A man cuts. Then he", " eats. it.") and gold == 1
    reqs, gold, texts = evaluate.requests_for(
        "winogrande", {"sentence": "Tom gave Bob _ book because he was kind.",
                       "option1": "Tom", "option2": "Bob", "answer": "2"})
    assert reqs == [("Tom gave Bob Tom", " book because he was kind."),
                    ("Tom gave Bob Bob", " book because he was kind.")] and gold == 1


def test_corpus_task_and_accuracy(llq_eval, imported, byte_tokenizer, tmp_path):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read() * 3
    docs = evaluate.make_corpus_task(text, n_items=4, choices=3, seed=5, ctx_chars=40,
                                     cont_chars=12)
    assert len(docs) == 4
    for d in docs:
        assert len(d["choices"]["text"]) == 3 and d["answerKey"] in "ABC"
        assert d["question"] and all(d["choices"]["text"])
    result = evaluate.evaluate_task(llq_eval, imported["llama3-gqa-kv"], byte_tokenizer[0],
                                    "corpus_mc", docs, workdir=str(tmp_path))
    assert result["items"] == 4
    assert result["acc"] in (0, 0.25, 0.5, 0.75, 1.0)
    assert result["acc_norm"] in (0, 0.25, 0.5, 0.75, 1.0)


def test_calibration_text_is_tokenized(llq_opt, imported, byte_tokenizer, tmp_path):
    """--calib takes text (tokenized like Hugging Face) as well as token ids."""
    path, tok = byte_tokenizer
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    (tmp_path / "calib.txt").write_text(text, encoding="utf-8")
    (tmp_path / "calib.ids").write_text(" ".join(map(str, tok.encode(text).ids)))
    outs = []
    for calib, extra in (("calib.txt", [f"--calib-tokenizer={path}"]), ("calib.ids", [])):
        out = tmp_path / f"{calib}.mlir"
        subprocess.run([llq_opt, imported["llama3-gqa"], "--quantize=gptq-w4-g32",
                        f"--calib={tmp_path / calib}", "--calib-samples=2",
                        "--calib-seqlen=64", "--quantize-report=none", "-o", str(out)] + extra,
                       check=True)
        outs.append((tmp_path / f"{calib}.safetensors").read_bytes())
    assert outs[0] == outs[1]
    r = subprocess.run([llq_opt, imported["llama3-gqa"], "--quantize=gptq-w4-g32",
                        f"--calib={tmp_path / 'calib.txt'}", "-o", str(tmp_path / "x.mlir")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--calib-tokenizer" in r.stderr
    assert not (tmp_path / "x.mlir").exists()
