//===- AddedVocabulary.cpp - tokenizers' added tokens ---------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "AddedVocabulary.h"

#include "Unicode.h"

#include <algorithm>

namespace llq {
namespace tok {

namespace {

bool isWhiteSpace(uint32_t cp) { return charClass(cp) & kWhiteSpace; }

/// Start of the white space ending \p s (Rust regex \s*$).
size_t trailingSpaceStart(std::string_view s) {
  size_t pos = s.size();
  while (pos > 0) {
    size_t start = pos - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
      --start;
    size_t len;
    if (!isWhiteSpace(decodeUtf8(s, start, len)))
      break;
    pos = start;
  }
  return pos;
}

/// Length of the white space starting \p s (Rust regex ^\s*).
size_t leadingSpaceLength(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len;
    if (!isWhiteSpace(decodeUtf8(s, pos, len)))
      break;
    pos += len;
  }
  return pos;
}

bool sameToken(const AddedToken &a, const AddedToken &b) {
  return a.content == b.content && a.singleWord == b.singleWord &&
         a.lstrip == b.lstrip && a.rstrip == b.rstrip &&
         a.normalized == b.normalized && a.special == b.special;
}

} // namespace

//===----------------------------------------------------------------------===//
// TokenTrie
//===----------------------------------------------------------------------===//

uint32_t TokenTrie::child(uint32_t node, uint8_t byte) const {
  const auto &children = nodes[node].children;
  auto it = std::lower_bound(children.begin(), children.end(), byte,
                             [](const std::pair<uint8_t, uint32_t> &c,
                                uint8_t b) { return c.first < b; });
  return it != children.end() && it->first == byte ? it->second : 0;
}

void TokenTrie::insert(std::string_view token, uint32_t id) {
  if (token.empty())
    return;
  isFirstByte[static_cast<uint8_t>(token[0])] = true;
  uint32_t node = 0;
  for (char c : token) {
    uint8_t byte = static_cast<uint8_t>(c);
    uint32_t next = child(node, byte);
    if (next == 0) {
      next = static_cast<uint32_t>(nodes.size());
      auto &children = nodes[node].children;
      auto it = std::lower_bound(children.begin(), children.end(), byte,
                                 [](const std::pair<uint8_t, uint32_t> &ch,
                                    uint8_t b) { return ch.first < b; });
      children.insert(it, {byte, next});
      nodes.emplace_back(); // Invalidates `children`; not used after this.
    }
    node = next;
  }
  nodes[node].id = id;
}

size_t TokenTrie::longestAt(std::string_view s, size_t pos,
                            uint32_t &id) const {
  if (!isFirstByte[static_cast<uint8_t>(s[pos])])
    return 0;
  size_t best = 0;
  uint32_t node = 0;
  for (size_t i = pos; i < s.size(); ++i) {
    node = child(node, static_cast<uint8_t>(s[i]));
    if (node == 0)
      break;
    if (nodes[node].id) {
      best = i + 1 - pos;
      id = *nodes[node].id;
    }
  }
  return best;
}

//===----------------------------------------------------------------------===//
// AddedVocabulary
//===----------------------------------------------------------------------===//

void AddedVocabulary::add(
    const std::vector<AddedToken> &tokens, size_t modelSize,
    const std::function<std::optional<uint32_t>(std::string_view)>
        &modelLookup) {
  uint32_t nextId = static_cast<uint32_t>(modelSize);
  if (!idToToken.empty()) {
    uint32_t maxId = 0;
    for (const auto &entry : idToToken)
      maxId = std::max(maxId, entry.first);
    if (maxId >= modelSize || modelSize == 0)
      nextId = maxId + 1;
  }
  for (const AddedToken &token : tokens) {
    if (token.content.empty())
      continue;
    std::optional<uint32_t> existing = idOf(token.content);
    if (existing) {
      const AddedToken *old = tokenOf(*existing);
      if (old && sameToken(*old, token))
        continue;
    } else {
      existing = modelLookup(token.content);
    }
    uint32_t id = existing ? *existing : nextId++;
    contentToId[token.content] = id;
    if (token.special)
      specialContents.insert(token.content);
    idToToken[id] = token;
  }

  rawTrie = TokenTrie();
  normalizedTrie = TokenTrie();
  for (const auto &[id, token] : idToToken)
    (token.normalized ? normalizedTrie : rawTrie).insert(token.content, id);
}

std::optional<uint32_t> AddedVocabulary::idOf(std::string_view content) const {
  auto it = contentToId.find(std::string(content));
  if (it == contentToId.end())
    return std::nullopt;
  return it->second;
}

const AddedToken *AddedVocabulary::tokenOf(uint32_t id) const {
  auto it = idToToken.find(id);
  return it == idToToken.end() ? nullptr : &it->second;
}

void AddedVocabulary::split(
    std::string_view text,
    const std::function<void(const Segment &)> &fn) const {
  // No normalizer is supported, so the normalized pass sees the raw pieces.
  findMatches(text, rawTrie, [&](const Segment &segment) {
    if (segment.id)
      fn(segment);
    else
      findMatches(segment.text, normalizedTrie, fn);
  });
}

/// AddedVocabulary::find_matches: leftmost-longest matches, each widened
/// over surrounding white space for lstrip / rstrip, with the text between
/// them. As there, a match widened by rstrip may overlap the next match.
void AddedVocabulary::findMatches(
    std::string_view sentence, const TokenTrie &trie,
    const std::function<void(const Segment &)> &fn) const {
  if (sentence.empty())
    return;
  if (trie.empty()) {
    fn({sentence, std::nullopt});
    return;
  }
  size_t startOffset = 0;
  for (size_t pos = 0; pos < sentence.size();) {
    uint32_t id = 0;
    size_t len = trie.longestAt(sentence, pos, id);
    if (len == 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;
    const AddedToken *token = tokenOf(id);
    if (token && token->lstrip)
      start =
          std::max(trailingSpaceStart(sentence.substr(0, start)), startOffset);
    if (token && token->rstrip)
      stop += leadingSpaceLength(sentence.substr(stop));
    if (startOffset < start)
      fn({sentence.substr(startOffset, start - startOffset), std::nullopt});
    fn({sentence.substr(start, stop - start), id});
    startOffset = stop;
  }
  if (startOffset < sentence.size())
    fn({sentence.substr(startOffset), std::nullopt});
}

} // namespace tok
} // namespace llq
