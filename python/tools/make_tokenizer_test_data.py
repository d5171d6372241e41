r"""Regenerates unittests/Tokenizer/Inputs: small LLaMA-family tokenizers and
the ids Hugging Face `tokenizers` gives for a varied set of texts, which the
C++ tokenizer tests must reproduce exactly.

Each configuration is a byte-level BPE model trained here (a few thousand
merges on a few hundred KB of English from the Python docs and fortune files
installed on the machine, plus some multilingual lines) and wired up the way
real checkpoints ship it:

- smollm2: Sequence[Digits(individual), ByteLevel(regex)], special tokens at
  ids 0-2, merges stored as [a, b] pairs, ByteLevel post-processor.
- gpt2: plain ByteLevel(regex), merges stored as legacy "a b" strings (with a
  "#version" line), <|endoftext|> appended after the model vocabulary, plus
  added tokens with lstrip / rstrip and a non-special (normalized) one.
- variants of these, stored as the base file plus text replacements (see
  VARIANTS): ByteLevel(add_prefix_space=true), Digits without
  individual_digits, and every Split behavior, inverted or not.
- llama3: Sequence[Split(LLaMA3 regex, Isolated), ByteLevel(no regex)],
  ignore_merges, reserved special tokens after the vocabulary, and a
  Sequence[ByteLevel, TemplateProcessing] post-processor adding
  <|begin_of_text|>; a few vocabulary entries no merge produces, to exercise
  ignore_merges.

It writes <name>.json (the tokenizers) and, for them and the variants,
<name>.expected.txt, lines of tab-separated fields (ids space-separated, "-" for none; TEXT is the UTF-8
bytes with backslash, control characters, DEL and bytes of invalid UTF-8
written as \xHH, everything else as is):

    json        FILE                     the tokenizer.json to load, then
    replace     TEXT  TEXT               replace text in it (variants)
    vocab_size  N                        get_vocab_size(with_added_tokens=True)
    token       TEXT  ID|-               token_to_id
    encode      TEXT  IDS  IDS           encode(add_special_tokens=True/False)
    invalid     TEXT  IDS  IDS           the same for invalid UTF-8 bytes, whose
                                         ids are those of the text decoded with
                                         errors="replace"
    decode      IDS   TEXT  TEXT         decode(skip_special_tokens=False/True)

    python python/tools/make_tokenizer_test_data.py [OUT_DIR]
"""

import glob
import json
import os
import random
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models
from tokenizers import pre_tokenizers as pt
from tokenizers import trainers

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "unittests", "Tokenizer", "Inputs")

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

MULTILINGUAL = [
    "Le café est très bon, n'est-ce pas ? Où est la bibliothèque ?",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "El niño comió piña y jalapeños en la mañana.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "日本語のテキストを処理します。東京は大きな都市です。",
    "我们正在测试中文分词器的行为。今天天气很好。",
    "한국어 텍스트도 처리할 수 있어야 합니다.",
    "שלום עולם, זהו טקסט בעברית.",
    "مرحبا بالعالم، هذا نص باللغة العربية.",
    "यह हिन्दी में एक वाक्य है।",
    "Emoji: 😀 👍 🎉 ❤️ 👨‍👩‍👧 🇺🇸",
]

FIXED_TEXTS = [
    "", " ", "  ", "\n", "\t", "\r\n", "a", "Hello world", "Hello, world!",
    " Hello", "Hello ", "  Hello  world  ",
    "The quick brown fox jumps over the lazy dog.",
    # Contractions, in several cases.
    "it's", "It'S", "IT'S", "don't DON'T Don'T", "we're WE'RE We'Re",
    "I've I'VE", "I'm I'M", "we'll WE'LL We'Ll", "he'd HE'D",
    "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "''s", "'sup",
    "rock'n'roll", "the dog's bone's", "x'\u017f '\u017ft '\u017fup", "'\u017ft", "x'\u017ft", "don'\u017ft'\u017fve", "\u2019s curly",
    "l'\u00e9t\u00e9", "'\n's", "' s", "'1", "'\u00e9",
    # Digits and numbers.
    "0", "1234567890", "3.14159", "12,345,678.90", "year 2024", "v1.2.3",
    "007", "12345678901234567890123456789012345678901234567890", "a1b2c3",
    " 42", "  42", "1 2  3   4", "\u0663\u0664\u0665 Arabic-Indic",
    "\u00bd \u00b2 \u00b3 \u216b \u2473", "\u0967\u0968\u0969",
    "\U0001d7d8\U0001d7d9\U0001d7da", "x1234y", "1,000,000", "-5", "+12.5e-3",
    # Whitespace.
    "a\nb", "a\n\nb", "a\r\nb", "a \n b", "a\t\tb", "  \n  \n  ", "\n\n\n",
    "\r\r\n\n", "x\u00a0y", "x\u00a0\u00a0y", "x \u00a0y", "x\u3000y",
    "x\u2028y", "x\u0085y", "x\u200by", "x\u180ey", "x\u1680y",
    "\u2003em space", " \t\n\r\x0b\x0c", "trailing   ", "   leading",
    "tab\tseparated\tvalues", "line1\nline2\r\nline3\rline4",
    "    def f(x):\n        return x\n", "\u00a0\u00a0nbsp start",
    "a \t\n b", "a\n \nb", "!\n\n", "x\x1cy\x1fz",
    # Punctuation runs.
    "Hello!!!", "...", "?!?!", "--", "a--b", "(a)", "[1]", '{"key": "value"}',
    "<html><body>hi</body></html>", "foo_bar-baz.qux", "C++ && Rust || Go",
    "e-mail: john.doe@example.com", "https://example.com/path?q=1&r=2#frag",
    " !!!\n", "#include <stdio.h>", "$$$ 100%",
    "\u00a1Hola! \u00bfQu\u00e9 tal?", "\u00abquotes\u00bb \u201eGerman\u201c \u201csmart\u201d",
    ".\r\n\r\n", " ...\n\n", "a.\nb", "<|", "|>", "<|>", "<||>",
    # Unicode.
    "caf\u00e9", "cafe\u0301", "na\u00efve r\u00e9sum\u00e9", "\u00dcn\u00efc\u00f6d\u00e9",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u0442\u0435\u043a\u0441\u0442",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\u4e2d\u6587\u5b57\u7b26\u6d4b\u8bd5",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\u0e44\u0e17\u0e22", "\U0001f44d", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466 family",
    "\U0001f1fa\U0001f1f8\U0001f1eb\U0001f1f7", "\U0001f44b\U0001f3fd", "emoji\U0001f600in\U0001f600text",
    "a\u200db", "x\u0301\u0302y", "\u0301start", " \u0301", "\ufb01 ligature",
    "\u017f long s", "\u212b \u00c5", "\ufeffBOM", "\U0010ffff", "\U0001f600",
    "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522",
    "\u0130stanbul \u0131", "Stra\u00dfe STRASSE", "\u01c5 \u01c6",
    # Characters whose class depends on the Unicode version.
    "\U00010d4a\U00010d4b Garay", "\U00011de0\U00011de1 Tolong Siki digits",
    "\U00031350\U00031351 CJK extension H", "\U00016d40 Kirat Rai",
    "\U00010d40\U00010d41 Garay digits", "\U0001e5d0 Ol Onal",
    # Long inputs.
    "a" * 1000, "supercalifragilisticexpialidocious" * 10, " " * 500 + "x",
    "x" + " " * 500, "9" * 300, "!" * 300, "\n" * 200, "ab " * 100,
    "\u00e9" * 200, "\U0001f600" * 100, "'s" * 100,
]

# Templates with {0}, {1}, ... standing for the configuration's special tokens.
SPECIAL_TEMPLATES = [
    "{0}", "{0}{0}", "a{0}b", " {0} ", "{0}\n", "\n{0}", "<|{0}", "{0}|>",
    "<{0}>", "{0}x{1}", "text with {0} inside and {1} too", "{1}user\nHello{2}",
    "  {0}  {1}  ", "{0} {0} {0}",
]

INVALID_UTF8 = [
    b"abc\xff", b"\xe2\x82", b"\xe2\x82A", b"\xc0\xaf", b"\xed\xa0\x80x",
    b"\xf4\x90\x80\x80", b"\xf0\x9f\x98", b"\xf0\x9f\x98 ok", b"\x80\x80\x80",
    b"caf\xc3", b"\xfe\xff", b"a\xc3\x28b", b"it\xe2\x80s", b"12\xff34",
]

ATOMS = [
    "a", "b", "Z", "hello", "The", " world", " ", "  ", "\t", "\n", "\r\n", "\r",
    "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b", "\u200d", "0", "7", "12345",
    ".", ",", "!", "?", ";", "-", "(", ")", "[", "]", '"', "'", "`", "@", "#",
    "$", "%", "&", "*", "_", "+", "=", "/", "\\", "|", "<", ">", "~",
    "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'\u017f", "s", "t",
    "\u00e9", "\u0301", "\u4e2d", "\u6587", "\U0001f600", "\U0001f44d", "\u0645",
    "\u05e9", "\u017f", "\u0130", "\u00df", "\u0663", "\u00bd", "\u216b", "\u00b2",
    "\U00010d4a", "\U00011de0", "\U00010d40", "\ufeff", "\x0b", "\x1c", "<|", "|>",
]


def collect_corpus():
    """Deterministic training text: Python docs, fortunes, multilingual lines."""
    parts = []
    docs = sorted(glob.glob("/usr/share/doc/python3.11/html/_sources/library/*.txt"))
    fortunes = sorted(glob.glob("/usr/share/games/fortunes/*.u8"))
    if not docs or not fortunes:
        sys.exit("error: Python docs or fortunes not installed")
    for files, budget in ((docs, 300_000), (fortunes, 150_000)):
        used = 0
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read(20_000)
            parts.append(text)
            used += len(text)
            if used >= budget:
                break
    parts.extend(MULTILINGUAL * 20)
    return parts


def held_out_samples(rng):
    """Paragraphs from documentation the models were not trained on."""
    files = sorted(glob.glob("/usr/share/doc/python3.11/html/_sources/howto/*.txt"))
    samples = []
    for path in files[:12]:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for _ in range(2):
            start = rng.randrange(max(1, len(text) - 800))
            samples.append(text[start:start + rng.randrange(100, 400)])
    with open(files[0], encoding="utf-8", errors="replace") as f:
        samples.append(f.read()[:3_000])
    return samples


def random_texts(rng, specials, count):
    atoms = ATOMS + list(specials)
    return ["".join(rng.choice(atoms) for _ in range(rng.randrange(1, 30)))
            for _ in range(count)]


def train(pre_tokenizer, merges, corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=256 + merges, min_frequency=2, show_progress=False,
        initial_alphabet=pt.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return json.loads(tok.to_str())["model"]


def added(i, content, special=True, lstrip=False, rstrip=False, normalized=None):
    return {"id": i, "content": content, "single_word": False, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": (not special) if normalized is None else normalized,
            "special": special}


def byte_level(add_prefix_space=False, trim_offsets=True, use_regex=True):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space,
            "trim_offsets": trim_offsets, "use_regex": use_regex}


def tokenizer_json(model, added_tokens, pre_tokenizer, post_processor):
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": added_tokens, "normalizer": None,
            "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": byte_level(True, True, True), "model": model}


def shifted(model, offset):
    """Returns a copy of model with every id moved up by offset."""
    model = dict(model)
    model["vocab"] = {k: v + offset for k, v in model["vocab"].items()}
    return model


def make_smollm2(gpt2_model):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    model = shifted(gpt2_model, len(specials))
    # As the trainer does it: the special tokens lead the model vocabulary.
    model["vocab"] = dict({s: i for i, s in enumerate(specials)}, **model["vocab"])
    pre = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, byte_level()]}
    toks = [added(i, s) for i, s in enumerate(specials)]
    return tokenizer_json(model, toks, pre, byte_level(True, False, True)), specials


def make_gpt2(gpt2_model, add_prefix_space):
    model = dict(gpt2_model)
    model["merges"] = ["#version: 0.2"] + [a + " " + b for a, b in model["merges"]]
    n = len(model["vocab"])
    # A word-like token that is already in the vocabulary, added as a
    # non-special token: it is then split out of words ("Athens" -> "A", ...).
    word = next(t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])
                if t.isalpha() and t.isascii() and len(t) >= 4)
    toks = [added(n, "<|endoftext|>"), added(n + 1, "<mask>", lstrip=True),
            added(n + 2, "[SEP]", rstrip=True), added(model["vocab"][word], word, special=False),
            added(n + 3, "new token", special=False)]
    pre = byte_level(add_prefix_space=add_prefix_space)
    specials = ["<|endoftext|>", "<mask>", "[SEP]", word, "new token"]
    return tokenizer_json(model, toks, pre, byte_level(add_prefix_space, True, True)), specials


def make_llama3(llama_model):
    model = dict(llama_model)
    model["ignore_merges"] = True
    vocab = dict(model["vocab"])
    # Entries no merge sequence produces: only ignore_merges yields them whole.
    # "'\u00c5\u00bf" spells "'\u017f" (long s), a contraction only case-insensitively.
    for extra in ["\u0120tokenization", "\u0120supercalifragilistic", "987",
                  "\u0120\u0120\u0120\u0120", "'\u00c5\u00bf"]:
        if extra not in vocab:
            vocab[extra] = len(vocab)
    model["vocab"] = vocab
    n = len(vocab)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>"]
    toks = [added(n + i, s) for i, s in enumerate(specials)]
    pre = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated",
         "invert": False},
        byte_level(use_regex=False)]}
    bos = specials[0]
    template = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [n], "tokens": [bos]}},
    }
    post = {"type": "Sequence", "processors": [byte_level(True, False, True), template]}
    return tokenizer_json(model, toks, pre, post), specials


def ignore_merges_texts(tok_json):
    """Texts of vocabulary entries that BPE merging alone would split."""
    plain = json.loads(json.dumps(tok_json))
    plain["model"]["ignore_merges"] = False
    plain_tok = Tokenizer.from_str(json.dumps(plain))
    decoder = decoders.ByteLevel()
    texts = []
    for token, _ in sorted(tok_json["model"]["vocab"].items(), key=lambda kv: kv[1]):
        text = decoder.decode([token])
        if "\ufffd" in text:
            continue  # Part of a character; not a text of its own.
        if len(plain_tok.encode(text, add_special_tokens=False).ids) > 1:
            texts.append(text)
    return texts[:25]


def escape(data):
    """Escapes bytes for one tab-separated field (see the module comment)."""
    out = []
    i = 0
    while i < len(data):
        b = data[i]
        if b < 0x80:
            out.append("\\x%02x" % b if b < 0x20 or b in (0x5C, 0x7F) else chr(b))
            i += 1
            continue
        # Copy a well-formed multi-byte character, escape anything else.
        n = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
        try:
            out.append(data[i:i + n].decode("utf-8"))
            i += n
        except UnicodeDecodeError:
            out.append("\\x%02x" % b)
            i += 1
    return "".join(out)


def ids_field(ids):
    return " ".join(map(str, ids)) if ids else "-"


def write_expected(path, tok, header, texts, specials, rng, encode_only=False):
    lines = ["# Generated by python/tools/make_tokenizer_test_data.py with tokenizers "
             + tokenizers.__version__ + "; do not edit."] + header
    lines.append("vocab_size\t%d" % tok.get_vocab_size(with_added_tokens=True))
    vocab = tok.get_vocab(with_added_tokens=True)
    probes = [] if encode_only else (
        list(specials) + sorted(vocab)[:: max(1, len(vocab) // 40)] + ["<|not_a_token|>", ""])
    for content in probes:
        tid = tok.token_to_id(content)
        lines.append("token\t%s\t%s" % (escape(content.encode()), "-" if tid is None else tid))
    all_ids = []
    for text in texts:
        with_special = tok.encode(text, add_special_tokens=True).ids
        without = tok.encode(text, add_special_tokens=False).ids
        all_ids.append(with_special)
        lines.append("encode\t%s\t%s\t%s" % (escape(text.encode()), ids_field(with_special),
                                             ids_field(without)))
    for raw in INVALID_UTF8:
        text = raw.decode("utf-8", errors="replace")
        lines.append("invalid\t%s\t%s\t%s" % (
            escape(raw), ids_field(tok.encode(text, add_special_tokens=True).ids),
            ids_field(tok.encode(text, add_special_tokens=False).ids)))
    size = tok.get_vocab_size(with_added_tokens=True)
    decode_cases = [] if encode_only else [ids for ids in all_ids if len(ids) < 100][:60]
    for _ in range(0 if encode_only else 60):
        decode_cases.append([rng.randrange(size) for _ in range(rng.randrange(1, 12))])
    if not encode_only:
        decode_cases.append([size + 5, 0, size + 100])
    for ids in decode_cases:
        lines.append("decode\t%s\t%s\t%s" % (
            ids_field(ids), escape(tok.decode(ids, skip_special_tokens=False).encode()),
            escape(tok.decode(ids, skip_special_tokens=True).encode())))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


# Variants: (name, base, [(from, to), ...]); the tokenizer is the base file
# with each `from` replaced by `to`, which keeps Inputs small.
VARIANTS = [
    ("gpt2-prefix", "gpt2", [('"add_prefix_space":false', '"add_prefix_space":true')]),
    ("smollm2-digit-runs", "smollm2",
     [('"individual_digits":true', '"individual_digits":false')]),
] + [
    ("llama3-%s%s" % (behavior.lower(), "-inverted" if invert else ""), "llama3",
     [('"behavior":"Isolated","invert":false',
       '"behavior":"%s","invert":%s' % (behavior, "true" if invert else "false"))])
    for behavior in ["Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]
    for invert in [False, True] if (behavior, invert) != ("Isolated", False)
]


def full_texts(rng, tok_json, specials):
    texts = list(FIXED_TEXTS)
    texts += [t.format(*specials, *specials) for t in SPECIAL_TEMPLATES]
    texts += [specials[0][:-1], specials[0] + specials[0][:-1], "x" + specials[0][1:]]
    texts += ["a   <mask> b", "<mask>", "  <mask>", "[SEP]   x", "[SEP]\n\ny", "Athens the"]
    texts += held_out_samples(rng)
    texts += random_texts(rng, specials, 250)
    if tok_json["model"].get("ignore_merges"):
        texts += ignore_merges_texts(tok_json)
        texts += [" tokenization", " supercalifragilistic", "987", "    x", "the tokenization"]
    return texts


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else OUT
    os.makedirs(out, exist_ok=True)
    corpus = collect_corpus()
    gpt2_model = train(pt.ByteLevel(add_prefix_space=False), 2000, corpus)
    # A merge only a case-insensitive contraction rule would reach ("IT'S"):
    # GPT-2's regex is case-sensitive, so "'S" must never be one pre-token.
    gpt2_model["vocab"]["'S"] = len(gpt2_model["vocab"])
    gpt2_model["merges"].append(["'", "S"])
    llama_model = train(pt.Sequence([
        pt.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
        pt.ByteLevel(add_prefix_space=False, use_regex=False)]), 2500, corpus)

    configs = {
        "smollm2": make_smollm2(gpt2_model),
        "gpt2": make_gpt2(gpt2_model, False),
        "llama3": make_llama3(llama_model),
    }
    sources = {}
    for name, (tok_json, specials) in configs.items():
        rng = random.Random(name)
        text = json.dumps(tok_json, ensure_ascii=False, separators=(",", ":"))
        with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as f:
            f.write(text)
        sources[name] = text
        tok = Tokenizer.from_file(os.path.join(out, name + ".json"))
        write_expected(os.path.join(out, name + ".expected.txt"), tok,
                       ["json\t%s.json" % name], full_texts(rng, tok_json, specials),
                       specials, rng)
        print("wrote", name)

    for name, base, replacements in VARIANTS:
        rng = random.Random(name)
        text = sources[base]
        header = ["json\t%s.json" % base]
        for old, new in replacements:
            assert old in text, (name, old)
            text = text.replace(old, new)
            header.append("replace\t%s\t%s" % (escape(old.encode()), escape(new.encode())))
        tok = Tokenizer.from_str(text)
        specials = configs[base][1]
        texts = FIXED_TEXTS[:120] + random_texts(rng, specials, 50)
        write_expected(os.path.join(out, name + ".expected.txt"), tok, header, texts,
                       specials, rng, encode_only=True)
        print("wrote", name)


if __name__ == "__main__":
    main()
