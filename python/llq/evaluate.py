"""Evaluation of llq models: perplexity and zero-shot multiple choice.

Perplexity runs `llq-eval ppl` (the study's protocol). Zero-shot tasks use
the lm-evaluation-harness layouts and scoring rules (old v0.3 style, as the
study): each choice is a continuation whose summed log-probability after the
task's context is computed by `llq-eval score`; `acc` picks the largest,
`acc_norm` the largest per character of the continuation.

Task files are JSONL in the harness's dataset layouts:
  piqa        {"goal", "sol1", "sol2", "label"}
  arc_easy / arc_challenge
              {"question", "choices": {"text": [...], "label": [...]}, "answerKey"}
  hellaswag   {"activity_label", "ctx_a", "ctx_b", "endings", "label"}
  winogrande  {"sentence", "option1", "option2", "answer"}
and the built-in `corpus_mc` (ARC layout), made from the evaluation text:
pick a passage's true continuation among continuations taken from
elsewhere in the text.
"""

import json
import os
import random
import re
import subprocess
import tempfile

import numpy as np


def _preprocess_hellaswag(text):
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def requests_for(task, doc):
    """(list of (context, continuation), gold index, choice texts for acc_norm)."""
    if task == "piqa":
        ctx = f"Question: {doc['goal']}\nAnswer:"
        choices = [doc["sol1"], doc["sol2"]]
        return [(ctx, " " + c) for c in choices], int(doc["label"]), choices
    if task in ("arc_easy", "arc_challenge", "corpus_mc"):
        ctx = f"Question: {doc['question']}\nAnswer:"
        if task == "corpus_mc":
            ctx = doc["question"]
        labels = list(doc["choices"]["label"])
        choices = list(doc["choices"]["text"])
        return [(ctx, " " + c) for c in choices], labels.index(doc["answerKey"]), choices
    if task == "hellaswag":
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        query = _preprocess_hellaswag(doc["activity_label"] + ": " + ctx)
        choices = [_preprocess_hellaswag(e) for e in doc["endings"]]
        return [(query, " " + c) for c in choices], int(doc["label"]), choices
    if task == "winogrande":
        idx = doc["sentence"].index("_")
        target = " " + doc["sentence"][idx + 1:].strip()
        options = [doc["option1"], doc["option2"]]
        reqs = [(doc["sentence"][:idx] + o, target) for o in options]
        return reqs, int(doc["answer"]) - 1, [target, target]
    raise ValueError(f"unknown task {task!r}")


def load_task(path):
    name = os.path.basename(path).split(".")[0]
    with open(path, encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    return name, docs


def make_corpus_task(text, n_items=200, choices=4, seed=0, ctx_chars=500, cont_chars=100):
    """Multiple choice from a text: a passage, its true continuation and
    continuations cut from elsewhere. Contexts and continuations end at word
    boundaries; distractors never overlap the passage."""
    rng = random.Random(seed)
    words = [m.start() for m in re.finditer(r"(?<=\s)\S", text)]
    span = ctx_chars + cont_chars
    docs = []

    def cut(start, length):
        end = text.find(" ", start + length)
        return text[start:end if end > 0 else start + length].strip()

    while len(docs) < n_items:
        start = rng.choice(words)
        if start + span + 1000 > len(text):
            continue
        context = cut(start, ctx_chars)
        true = cut(start + len(context) + 1, cont_chars)
        wrong = []
        while len(wrong) < choices - 1:
            s = rng.choice(words)
            if abs(s - start) < 2 * span or s + cont_chars + 100 > len(text):
                continue
            wrong.append(cut(s, cont_chars))
        options = wrong + [true]
        rng.shuffle(options)
        labels = "ABCDEFGH"[:choices]
        docs.append({"question": re.sub(r"\s+", " ", context),
                     "choices": {"text": [re.sub(r"\s+", " ", o) for o in options],
                                 "label": list(labels)},
                     "answerKey": labels[options.index(true)]})
    return docs


def score(tool, model, tokenizer, requests, workdir):
    """Summed log-probabilities of (context, continuation) pairs."""
    req = os.path.join(workdir, "requests.jsonl")
    out = os.path.join(workdir, "scores.jsonl")
    with open(req, "w", encoding="utf-8") as f:
        for ctx, cont in requests:
            f.write(json.dumps({"context": ctx, "continuation": cont}) + "\n")
    subprocess.run([tool, "score", model, "--tokenizer", tokenizer, "--requests", req,
                    "-o", out], check=True)
    with open(out) as f:
        return [json.loads(line)["logprob"] for line in f if line.strip()]


def evaluate_task(tool, model, tokenizer, task, docs, workdir=None):
    """{'acc': ..., 'acc_norm': ..., 'items': n} for one task."""
    requests, spans, golds, lengths = [], [], [], []
    for doc in docs:
        reqs, gold, texts = requests_for(task, doc)
        spans.append((len(requests), len(reqs)))
        requests += reqs
        golds.append(gold)
        lengths.append([float(len(t)) for t in texts])
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        lps = np.array(score(tool, model, tokenizer, requests, tmp))
    acc = acc_norm = 0
    for (start, n), gold, ls in zip(spans, golds, lengths):
        lp = lps[start:start + n]
        acc += int(np.argmax(lp) == gold)
        acc_norm += int(np.argmax(lp / np.array(ls)) == gold)
    return {"acc": acc / len(docs), "acc_norm": acc_norm / len(docs), "items": len(docs)}


def perplexity(tool, model, tokenizer, text, seqlen, max_tokens=0, random_windows=0, seed=0):
    args = [tool, "ppl", model, "--tokenizer", tokenizer, "--text", text,
            "--seqlen", str(seqlen), "--json"]
    if max_tokens:
        args += ["--max-tokens", str(max_tokens)]
    if random_windows:
        args += ["--random-windows", str(random_windows), "--seed", str(seed)]
    # Progress (stderr) goes to the terminal; the JSON result is on stdout.
    out = subprocess.run(args, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])
