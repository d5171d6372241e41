//===- Tokenizer.cpp - Hugging Face BPE tokenizers ------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The encode pipeline of tokenizers' TokenizerImpl::encode for one sequence:
// added tokens are cut out of the raw text, the rest is pre-tokenized, each
// pre-token goes through the BPE model, and the post-processor's template
// adds special tokens. decode maps ids back to token spellings and runs the
// decoder.
//
//===----------------------------------------------------------------------===//

#include "TokenizerImpl.h"

#include "Unicode.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

namespace llq {

namespace {

bool readFile(const std::string &path, std::string &contents,
              std::string &error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::strerror(errno);
    return false;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    error = "read error";
    return false;
  }
  contents = buffer.str();
  return true;
}

/// The ByteLevel decoder: each token whose characters are all in the
/// byte-level alphabet becomes those bytes, any other token its own UTF-8
/// bytes; the concatenation is then read as UTF-8 with U+FFFD for
/// ill-formed parts (String::from_utf8_lossy).
std::string decodeByteLevel(const std::vector<const std::string *> &tokens) {
  std::string bytes;
  for (const std::string *token : tokens) {
    size_t start = bytes.size();
    bool allMapped = true;
    for (size_t pos = 0; pos < token->size();) {
      size_t len;
      int byte = tok::byteFromByteLevel(tok::decodeUtf8(*token, pos, len));
      if (byte < 0) {
        allMapped = false;
        break;
      }
      bytes += static_cast<char>(byte);
      pos += len;
    }
    if (!allMapped) {
      bytes.resize(start);
      bytes += *token;
    }
  }
  return tok::repairUtf8(bytes);
}

} // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl(std::move(impl)) {}

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string &path,
                                           std::string &error) {
  std::string json;
  if (!readFile(path, json, error)) {
    error = path + ": cannot read: " + error;
    return nullptr;
  }
  return loadFromString(json, path, error);
}

std::unique_ptr<Tokenizer> Tokenizer::loadFromString(std::string_view json,
                                                     const std::string &name,
                                                     std::string &error) {
  std::unique_ptr<Impl> impl = Impl::parse(json, name, error);
  if (!impl) {
    error = name + ": " + error;
    return nullptr;
  }
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int64_t> Tokenizer::encode(std::string_view text,
                                       bool addSpecial) const {
  std::string repaired;
  if (!isValidUtf8(text)) {
    repaired = tok::repairUtf8(text);
    text = repaired;
  }

  std::vector<int64_t> ids;
  const tok::BpeModel &model = impl->model;
  tok::PieceFn tokenize = [&](std::string_view piece) {
    model.tokenize(piece, ids);
  };
  impl->added.split(text, [&](const tok::Segment &segment) {
    if (segment.id)
      ids.push_back(*segment.id);
    else
      impl->preTokenizer.run(segment.text, tokenize);
  });

  // Without addSpecial a template still runs, keeping only its sequences.
  for (const Impl::Template &t : impl->templates) {
    std::vector<int64_t> processed;
    processed.reserve(ids.size() + 4);
    for (const Impl::TemplatePiece &piece : t) {
      if (piece.isSequence)
        processed.insert(processed.end(), ids.begin(), ids.end());
      else if (addSpecial)
        processed.insert(processed.end(), piece.ids.begin(), piece.ids.end());
    }
    ids = std::move(processed);
  }
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t> &ids,
                              bool skipSpecial) const {
  std::vector<const std::string *> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id > std::numeric_limits<uint32_t>::max())
      continue;
    uint32_t key = static_cast<uint32_t>(id);
    const std::string *token = nullptr;
    if (const tok::AddedToken *added = impl->added.tokenOf(key))
      token = &added->content;
    else
      token = impl->model.idToToken(key);
    if (!token || (skipSpecial && impl->added.isSpecialContent(*token)))
      continue;
    tokens.push_back(token);
  }

  if (impl->decoder == Impl::Decoder::ByteLevel)
    return decodeByteLevel(tokens);
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i)
      out += ' ';
    out += *tokens[i];
  }
  return out;
}

int64_t Tokenizer::vocabSize() const {
  size_t overlapping = 0;
  for (const auto &entry : impl->added.contents())
    if (impl->model.tokenToId(entry.first))
      ++overlapping;
  return static_cast<int64_t>(impl->model.size() + impl->added.size() -
                              overlapping);
}

std::optional<int64_t> Tokenizer::tokenId(std::string_view token) const {
  if (std::optional<uint32_t> id = impl->added.idOf(token))
    return *id;
  if (std::optional<uint32_t> id = impl->model.tokenToId(token))
    return *id;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::tokenText(int64_t id) const {
  if (id < 0 || id > std::numeric_limits<uint32_t>::max())
    return std::nullopt;
  uint32_t key = static_cast<uint32_t>(id);
  if (const tok::AddedToken *added = impl->added.tokenOf(key))
    return added->content;
  if (const std::string *token = impl->model.idToToken(key))
    return *token;
  return std::nullopt;
}

bool Tokenizer::isSpecial(int64_t id) const {
  std::optional<std::string> token = tokenText(id);
  return token && impl->added.isSpecialContent(*token);
}

std::optional<int64_t> Tokenizer::bosId() const { return impl->bos; }

std::optional<int64_t> Tokenizer::eosId() const { return impl->eos; }

} // namespace llq
