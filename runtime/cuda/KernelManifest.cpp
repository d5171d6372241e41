//===- KernelManifest.cpp - The kernels.txt of a generated kernel dir -----===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/KernelManifest.h"

#include <charconv>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

namespace llq::rt::cuda {

const char *kindName(QGemmKernelKind kind) {
  switch (kind) {
  case QGemmKernelKind::Decode:
    return "decode";
  case QGemmKernelKind::Prefill:
    return "prefill";
  case QGemmKernelKind::HGemv:
    return "hgemv";
  case QGemmKernelKind::PBLLM:
    return "pbllm";
  case QGemmKernelKind::BiLLM:
    return "billm";
  case QGemmKernelKind::NF4:
    return "nf4";
  case QGemmKernelKind::Model:
    return "model";
  }
  return "?";
}

int ManifestModule::smVersion() const {
  if (arch.rfind("sm_", 0) != 0)
    return 0;
  int v = 0;
  for (size_t i = 3; i < arch.size() && arch[i] >= '0' && arch[i] <= '9'; ++i)
    v = v * 10 + (arch[i] - '0');
  return v;
}

std::array<uint32_t, 3> ManifestKernel::grid(int64_t m) const {
  if (kind == QGemmKernelKind::Model)
    return {static_cast<uint32_t>(gridX),
            static_cast<uint32_t>(gridYIsM ? m : gridY), 1};
  if (kind == QGemmKernelKind::Decode || kind == QGemmKernelKind::HGemv ||
      kind == QGemmKernelKind::PBLLM || kind == QGemmKernelKind::BiLLM ||
      kind == QGemmKernelKind::NF4) {
    const int64_t rows = tileN > 0 ? tileN : block[0];
    return {static_cast<uint32_t>((n + rows - 1) / rows),
            static_cast<uint32_t>(splitK), 1};
  }
  return {static_cast<uint32_t>((n + tileN - 1) / tileN),
          static_cast<uint32_t>((m + tileM - 1) / tileM), 1};
}

const ManifestKernel *KernelManifest::find(std::string_view name) const {
  for (const ManifestKernel &k : kernels)
    if (k.name == name)
      return &k;
  return nullptr;
}

namespace {

std::vector<std::string_view> splitWords(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() &&
           (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
      ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t' &&
           line[i] != '\r')
      ++i;
    if (i > start)
      words.push_back(line.substr(start, i - start));
  }
  return words;
}

bool parseInt(std::string_view text, int64_t &out) {
  if (text.empty())
    return false;
  const char *end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

bool isSymbolName(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9'))
    return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '$' || c == '.'))
      return false;
  return true;
}

bool isArch(std::string_view arch) {
  if (arch == "ptx" || arch == "host")
    return true;
  if (arch.size() < 5 || arch.substr(0, 3) != "sm_")
    return false;
  size_t i = 3;
  while (i < arch.size() && arch[i] >= '0' && arch[i] <= '9')
    ++i;
  if (i < 5)
    return false; // at least two digits
  // An optional feature suffix: sm_90a, sm_100f.
  return i == arch.size() ||
         (i + 1 == arch.size() && arch[i] >= 'a' && arch[i] <= 'z');
}

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "'";
}

template <typename Integer, typename Missing, typename Take>
Status parseLaunch(std::map<std::string, std::string> &values,
                   const std::string &at, ManifestKernel &kernel,
                   Integer &integer, Missing &missing, Take &take);

/// Parses the key=value words of one kernel line.
Status parseKernel(const std::vector<std::string_view> &words,
                   const std::string &where, ManifestKernel &kernel) {
  if (words.size() < 2)
    return Status::error(where + "a kernel line needs a name");
  if (!isSymbolName(words[1]))
    return Status::error(where + "bad kernel name " + quoted(words[1]));
  kernel.name = std::string(words[1]);
  const std::string at = where + "kernel " + kernel.name + ": ";
  std::map<std::string, std::string> values;
  for (size_t i = 2; i < words.size(); ++i) {
    std::string_view w = words[i];
    size_t eq = w.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return Status::error(at + "expected key=value, got " + quoted(w));
    std::string key(w.substr(0, eq));
    if (!values.emplace(key, std::string(w.substr(eq + 1))).second)
      return Status::error(at + "duplicate key '" + key + "'");
  }
  auto take = [&](const char *key, std::string &out) {
    auto it = values.find(key);
    if (it == values.end())
      return false;
    out = it->second;
    values.erase(it);
    return true;
  };
  auto missing = [&](const char *key) {
    return Status::error(at + "missing key '" + key + "'");
  };
  // An integer in [lo, hi]; `required` false leaves `out` when absent.
  auto integer = [&](const char *key, int64_t lo, int64_t hi, int64_t &out,
                     bool required) -> Status {
    std::string text;
    if (!take(key, text))
      return required ? missing(key) : Status();
    int64_t v = 0;
    if (!parseInt(text, v) || v < lo || v > hi)
      return Status::error(at + "'" + key + "' must be an integer in [" +
                           std::to_string(lo) + ", " + std::to_string(hi) +
                           "], not " + quoted(text));
    out = v;
    return Status();
  };
  constexpr int64_t kMaxDim = int64_t(1) << 31;

  std::string kind;
  if (!take("kind", kind))
    return missing("kind");
  if (kind == "decode")
    kernel.kind = QGemmKernelKind::Decode;
  else if (kind == "prefill")
    kernel.kind = QGemmKernelKind::Prefill;
  else if (kind == "hgemv")
    kernel.kind = QGemmKernelKind::HGemv;
  else if (kind == "pbllm")
    kernel.kind = QGemmKernelKind::PBLLM;
  else if (kind == "billm")
    kernel.kind = QGemmKernelKind::BiLLM;
  else if (kind == "nf4")
    kernel.kind = QGemmKernelKind::NF4;
  else if (kind == "model")
    kernel.kind = QGemmKernelKind::Model;
  else
    return Status::error(at + "'kind' must be decode, prefill, hgemv, pbllm, "
                              "billm, nf4 or model, not " +
                         quoted(kind));

  if (kernel.kind == QGemmKernelKind::Model) {
    if (!take("op", kernel.op))
      return missing("op");
    if (!isSymbolName(kernel.op))
      return Status::error(at + "bad op " + quoted(kernel.op));
    std::string grid;
    if (!take("grid", grid))
      return missing("grid");
    // x,y with y a count or "m" (one block row per activation row).
    size_t comma = grid.find(',');
    std::string_view x = std::string_view(grid).substr(0, comma);
    std::string_view y = comma == std::string::npos
                             ? std::string_view("1")
                             : std::string_view(grid).substr(comma + 1);
    int64_t gx = 0, gy = 0;
    kernel.gridYIsM = y == "m";
    if (!parseInt(x, gx) || gx < 1 || gx > 65535 ||
        (!kernel.gridYIsM && (!parseInt(y, gy) || gy < 1 || gy > 65535)))
      return Status::error(at + "'grid' must be x,y with x, y in [1, 65535] "
                                "(y may be m), not " +
                           quoted(grid));
    kernel.gridX = gx;
    kernel.gridY = kernel.gridYIsM ? 1 : gy;
  } else if (kernel.kind == QGemmKernelKind::HGemv ||
             kernel.kind == QGemmKernelKind::PBLLM ||
             kernel.kind == QGemmKernelKind::BiLLM ||
             kernel.kind == QGemmKernelKind::NF4) {
    for (auto [key, out] :
         {std::pair<const char *, int64_t *>{"n", &kernel.n}, {"k", &kernel.k}})
      if (Status s = integer(key, 1, kMaxDim, *out, true); !s)
        return s;
    const int64_t multiple = kernel.kind == QGemmKernelKind::HGemv ? 8 : 32;
    if (kernel.k % multiple != 0)
      return Status::error(at + "k=" + std::to_string(kernel.k) +
                           " is not a multiple of " + std::to_string(multiple));
    kernel.bits = kernel.kind == QGemmKernelKind::HGemv ? 16 : 1;
    if (Status s = integer("mtile", 1, 1024, kernel.mTile, true); !s)
      return s;
    if (Status s = integer("splitk", 1, 65535, kernel.splitK, true); !s)
      return s;
    if (Status s = integer("tile_n", 1, 4096, kernel.tileN, true); !s)
      return s;
  }
  if (kernel.kind == QGemmKernelKind::Model ||
      kernel.kind == QGemmKernelKind::HGemv ||
      kernel.kind == QGemmKernelKind::PBLLM ||
      kernel.kind == QGemmKernelKind::BiLLM ||
      kernel.kind == QGemmKernelKind::NF4)
    return parseLaunch(values, at, kernel, integer, missing, take);

  int64_t bits = 0;
  if (Status s = integer("bits", 1, 8, bits, true); !s)
    return s;
  if (bits != 2 && bits != 4 && bits != 8)
    return Status::error(at + "'bits' must be 2, 4 or 8, not " +
                         std::to_string(bits));
  kernel.bits = static_cast<int>(bits);
  for (auto [key, out] : {std::pair<const char *, int64_t *>{"n", &kernel.n},
                          {"k", &kernel.k},
                          {"group", &kernel.group}})
    if (Status s = integer(key, 1, kMaxDim, *out, true); !s)
      return s;
  const int64_t chunk = 128 / bits;
  if (kernel.k % chunk != 0)
    return Status::error(at + "k=" + std::to_string(kernel.k) +
                         " is not a multiple of the " + std::to_string(chunk) +
                         " codes of a 128-bit chunk");
  if (kernel.group % chunk != 0)
    return Status::error(at + "group=" + std::to_string(kernel.group) +
                         " is not a multiple of the " + std::to_string(chunk) +
                         " codes of a 128-bit chunk");

  if (kernel.kind == QGemmKernelKind::Decode) {
    if (Status s = integer("mtile", 1, 1024, kernel.mTile, true); !s)
      return s;
    if (Status s = integer("splitk", 1, 65535, kernel.splitK, true); !s)
      return s;
    // Output rows per block; one per thread when absent.
    if (Status s = integer("tile_n", 1, 4096, kernel.tileN, false); !s)
      return s;
  } else {
    if (Status s = integer("tile_m", 1, 4096, kernel.tileM, true); !s)
      return s;
    if (Status s = integer("tile_n", 1, 4096, kernel.tileN, true); !s)
      return s;
  }
  // Integer activations: the kernel names the nests that quantize its rows
  // first.
  int64_t actBits = 0;
  if (Status s = integer("act_bits", 2, 8, actBits, false); !s)
    return s;
  kernel.actBits = static_cast<int>(actBits);
  if (kernel.kind != QGemmKernelKind::Model && actBits) {
    if (!take("act_quant", kernel.actQuant))
      return missing("act_quant");
    take("act_amax", kernel.actAmax);
    for (const std::string *name : {&kernel.actQuant, &kernel.actAmax})
      if (!name->empty() && !isSymbolName(*name))
        return Status::error(at + "bad kernel name " + quoted(*name));
  }

  return parseLaunch(values, at, kernel, integer, missing, take);
}

/// The launch keys every kind has: block, smem, accumulate.
template <typename Integer, typename Missing, typename Take>
Status parseLaunch(std::map<std::string, std::string> &values,
                   const std::string &at, ManifestKernel &kernel,
                   Integer &integer, Missing &missing, Take &take) {
  std::string block;
  if (!take("block", block))
    return missing("block");
  {
    std::vector<int64_t> dims;
    size_t start = 0;
    while (true) {
      size_t comma = block.find(',', start);
      int64_t v = 0;
      std::string_view part = std::string_view(block).substr(
          start,
          comma == std::string::npos ? std::string::npos : comma - start);
      if (!parseInt(part, v) || v < 1 || v > 1024) {
        dims.clear();
        break;
      }
      dims.push_back(v);
      if (comma == std::string::npos)
        break;
      start = comma + 1;
    }
    if (dims.empty() || dims.size() > 3)
      return Status::error(at +
                           "'block' must be x[,y[,z]] with each in [1, "
                           "1024], not " +
                           quoted(block));
    while (dims.size() < 3)
      dims.push_back(1);
    if (dims[0] * dims[1] * dims[2] > 1024)
      return Status::error(at + "'block' " + quoted(block) +
                           " has more than 1024 threads");
    for (int i = 0; i < 3; ++i)
      kernel.block[i] = static_cast<uint32_t>(dims[i]);
  }

  int64_t smem = 0;
  if (Status s = integer("smem", 0, int64_t(1) << 24, smem, false); !s)
    return s;
  kernel.sharedBytes = static_cast<uint32_t>(smem);
  int64_t accumulate = 0;
  if (Status s = integer("accumulate", 0, 1, accumulate, false); !s)
    return s;
  kernel.accumulate = accumulate != 0;
  if ((kernel.kind == QGemmKernelKind::Decode ||
       kernel.kind == QGemmKernelKind::HGemv ||
       kernel.kind == QGemmKernelKind::PBLLM ||
       kernel.kind == QGemmKernelKind::BiLLM ||
       kernel.kind == QGemmKernelKind::NF4) &&
      kernel.splitK > 1 && !kernel.accumulate)
    return Status::error(at + "splitk=" + std::to_string(kernel.splitK) +
                         " needs accumulate=1 (the splits add into y)");
  kernel.extra = std::move(values);
  return Status();
}

} // namespace

Expected<KernelManifest> KernelManifest::parse(std::string_view text,
                                               std::string_view source) {
  KernelManifest manifest;
  std::map<std::string, int> kernelLines;
  int lineNo = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(
        pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++lineNo;
    if (size_t hash = line.find('#'); hash != std::string_view::npos)
      line = line.substr(0, hash);
    std::vector<std::string_view> words = splitWords(line);
    if (words.empty())
      continue;
    const std::string where =
        std::string(source) + ":" + std::to_string(lineNo) + ": ";
    if (words[0] == "module") {
      if (words.size() != 3)
        return Status::error(where + "expected 'module <sm_NN|ptx> <file>'");
      if (!isArch(words[1]))
        return Status::error(where + "unknown module architecture " +
                             quoted(words[1]) +
                             " (expected sm_NN, ptx or host)");
      std::string file(words[2]);
      if (file.find('/') != std::string::npos || file == "." || file == "..")
        return Status::error(where + "module file " + quoted(file) +
                             " must be a plain file name in the directory");
      for (const ManifestModule &m : manifest.modules)
        if (m.arch == words[1])
          return Status::error(where + "second module for " +
                               std::string(words[1]) + " (first on line " +
                               std::to_string(m.line) + ")");
      manifest.modules.push_back({std::string(words[1]), file, lineNo});
    } else if (words[0] == "kernel") {
      ManifestKernel kernel;
      kernel.line = lineNo;
      if (Status s = parseKernel(words, where, kernel); !s)
        return s;
      auto [it, inserted] = kernelLines.emplace(kernel.name, lineNo);
      if (!inserted)
        return Status::error(where + "kernel " + kernel.name +
                             " is already defined on line " +
                             std::to_string(it->second));
      manifest.kernels.push_back(std::move(kernel));
    } else {
      return Status::error(where + "unknown entry " + quoted(words[0]) +
                           " (expected 'module' or 'kernel')");
    }
  }
  if (manifest.modules.empty())
    return Status::error(std::string(source) + ": no module line");
  return manifest;
}

Expected<KernelManifest> KernelManifest::load(const std::string &directory) {
  const std::string path = directory + "/kernels.txt";
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status::error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  Expected<KernelManifest> manifest = parse(text.str(), path);
  if (manifest)
    manifest->directory = directory;
  return manifest;
}

} // namespace llq::rt::cuda
