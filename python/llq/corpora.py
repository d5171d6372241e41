"""Evaluation and calibration text that Debian packages install.

No dataset can be downloaded here, so the default corpora are built from
text the project's setup installs, from disjoint sources:

- evaluation: the prose of the Python documentation (Debian python3.11-doc,
  the reStructuredText sources of the tutorial, HOWTOs, FAQ, language
  reference and setup guides), one document per paragraph block, joined
  with blank lines as the WikiText2 protocol joins its rows;
- calibration: the fortune cookie collection (Debian fortunes): quotations,
  jokes and verse from many authors.

WikiText2, C4 or PTB files, where a user has them, take their place through
the same options (--text FILE).

    python -m llq.corpora OUT_DIR    # writes pydocs-eval.txt, fortunes-calib.txt
"""

import glob
import os
import re
import sys

PYDOC = "/usr/share/doc/python3.11/html/_sources"
PYDOC_SECTIONS = ("tutorial", "howto", "faq", "reference", "using")
FORTUNES = "/usr/share/games/fortunes"
# ASCII drawings are not text.
FORTUNES_SKIP = {"art", "ascii-art"}

_DIRECTIVE = re.compile(r"^\s*\.\. ")


def _clean_rst(text):
    """Drops directive lines (.. index::, .. note:: headers, comments) and
    trailing whitespace, keeps prose and examples."""
    lines = [line.rstrip() for line in text.splitlines() if not _DIRECTIVE.match(line)]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def eval_text():
    if not os.path.isdir(PYDOC):
        raise FileNotFoundError(f"{PYDOC} is missing: install the Debian package python3.11-doc "
                                "(scripts/setup.sh does)")
    docs = []
    for section in PYDOC_SECTIONS:
        for path in sorted(glob.glob(os.path.join(PYDOC, section, "**", "*.rst.txt"),
                                     recursive=True)):
            with open(path, encoding="utf-8", errors="replace") as f:
                docs.append(_clean_rst(f.read()))
    return "\n\n".join(d for d in docs if d)


def calib_text():
    if not os.path.isdir(FORTUNES):
        raise FileNotFoundError(f"{FORTUNES} is missing: install the Debian package fortunes "
                                "(scripts/setup.sh does)")
    pieces = []
    for path in sorted(glob.glob(os.path.join(FORTUNES, "*"))):
        base = os.path.basename(path)
        if "." in base or base in FORTUNES_SKIP or not os.path.isfile(path):
            continue
        utf8 = path + ".u8"
        with open(utf8 if os.path.exists(utf8) else path, encoding="utf-8",
                  errors="replace") as f:
            for cookie in f.read().split("\n%\n"):
                cookie = cookie.strip("%\n ")
                if cookie:
                    pieces.append(cookie)
    return "\n\n".join(pieces)


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for name, fn in (("pydocs-eval.txt", eval_text), ("fortunes-calib.txt", calib_text)):
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
            tmp = path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(fn())
            os.replace(tmp, path)
        paths[name] = path
    return paths


if __name__ == "__main__":
    for p in write(sys.argv[1] if len(sys.argv) > 1 else "build/corpora").values():
        print(p)
