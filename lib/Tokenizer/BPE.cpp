//===- BPE.cpp - tokenizers' BPE model ------------------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#include "BPE.h"

#include "Unicode.h"

#include <limits>
#include <mutex>
#include <queue>

namespace llq {
namespace tok {

namespace {

/// Pieces at least this long are not cached (tokenizers' MAX_LENGTH); they
/// are rare and would let one huge input evict everything useful.
constexpr size_t kMaxCachedPieceBytes = 256;

/// Entries kept at most; once full, new pieces are computed but not stored,
/// as tokenizers does. Enough for the distinct words of many MB of text.
constexpr size_t kCacheCapacity = 1 << 18;

/// Quotes a token for an error message, shortened.
std::string quoteToken(std::string_view s) {
  constexpr size_t kMaxShown = 60;
  std::string out = "'";
  out.append(s.substr(0, kMaxShown));
  if (s.size() > kMaxShown)
    out += "...";
  out += '\'';
  return out;
}

} // namespace

bool BpeModel::init(
    std::vector<std::pair<std::string, int64_t>> vocabEntries,
    const std::vector<std::pair<std::string, std::string>> &mergeList,
    Options opts, std::string &error) {
  options = std::move(opts);
  vocab.reserve(vocabEntries.size());
  for (auto &[token, id] : vocabEntries) {
    if (id < 0 || id > std::numeric_limits<uint32_t>::max()) {
      error = "model vocab id " + std::to_string(id) + " of token " +
              quoteToken(token) + " is outside [0, 2^32)";
      return false;
    }
    vocabR[static_cast<uint32_t>(id)] = token;
    vocab[std::move(token)] = static_cast<uint32_t>(id);
  }

  size_t prefixLen = options.continuingSubwordPrefix
                         ? options.continuingSubwordPrefix->size()
                         : 0;
  merges.reserve(mergeList.size());
  for (size_t rank = 0; rank < mergeList.size(); ++rank) {
    const auto &[a, b] = mergeList[rank];
    auto lookup = [&](const std::string &token) -> std::optional<uint32_t> {
      auto it = vocab.find(token);
      if (it != vocab.end())
        return it->second;
      error = "merge " + std::to_string(rank + 1) + " uses token " +
              quoteToken(token) + ", which is not in the vocabulary";
      return std::nullopt;
    };
    std::optional<uint32_t> aId = lookup(a), bId = aId ? lookup(b) : aId;
    if (!aId || !bId)
      return false;
    if (b.size() < prefixLen) {
      error = "merge " + std::to_string(rank + 1) + " token " + quoteToken(b) +
              " is shorter than continuing_subword_prefix";
      return false;
    }
    std::optional<uint32_t> newId = lookup(a + b.substr(prefixLen));
    if (!newId)
      return false;
    // A repeated pair keeps its last rank, as tokenizers' map does.
    merges[pairKey(*aId, *bId)] = {static_cast<uint32_t>(rank), *newId};
  }

  if (options.unkToken) {
    auto it = vocab.find(*options.unkToken);
    if (it == vocab.end()) {
      error = "unk_token " + quoteToken(*options.unkToken) +
              " is not in the vocabulary";
      return false;
    }
    unkId = it->second;
  }

  for (unsigned b = 0; b < 256; ++b) {
    auto it = vocab.find(byteLevelChar(static_cast<uint8_t>(b)));
    byteIds[b] = it == vocab.end() ? -1 : it->second;
  }
  return true;
}

std::optional<uint32_t> BpeModel::tokenToId(std::string_view token) const {
  auto it = vocab.find(std::string(token));
  if (it == vocab.end())
    return std::nullopt;
  return it->second;
}

const std::string *BpeModel::idToToken(uint32_t id) const {
  auto it = vocabR.find(id);
  return it == vocabR.end() ? nullptr : &it->second;
}

void BpeModel::tokenize(std::string_view piece,
                        std::vector<int64_t> &out) const {
  if (piece.empty())
    return;
  bool cacheable = piece.size() < kMaxCachedPieceBytes;
  std::string key;
  if (cacheable) {
    key.assign(piece);
    std::shared_lock<std::shared_mutex> lock(cacheMutex);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<uint32_t> ids;
  tokenizeUncached(piece, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock<std::shared_mutex> lock(cacheMutex);
    if (cache.size() < kCacheCapacity)
      cache.emplace(std::move(key), std::move(ids));
  }
}

std::string BpeModel::modelSpelling(std::string_view piece) const {
  if (!options.byteLevel)
    return std::string(piece);
  std::string spelled;
  spelled.reserve(piece.size() * 2);
  for (char c : piece)
    spelled += byteLevelChar(static_cast<uint8_t>(c));
  return spelled;
}

void BpeModel::tokenizeUncached(std::string_view piece,
                                std::vector<uint32_t> &out) const {
  if (options.ignoreMerges) {
    auto it = vocab.find(modelSpelling(piece));
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<Symbol> symbols;
  splitIntoSymbols(piece, symbols);
  mergeAll(symbols);
  for (const Symbol &s : symbols)
    if (s.len != 0)
      out.push_back(s.id);
}

/// BPE::merge_word up to the merge loop: one symbol per character of the
/// model spelling (per byte for byte-level models), with
/// continuing_subword_prefix / end_of_word_suffix, byte_fallback and unk
/// handling as tokenizers applies them. Characters with no token and no unk
/// are dropped, as there.
void BpeModel::splitIntoSymbols(std::string_view piece,
                                std::vector<Symbol> &symbols) const {
  symbols.reserve(piece.size());
  std::optional<std::pair<uint32_t, uint32_t>> unk; // (id, byte length)
  bool plainBytes = options.byteLevel && !options.continuingSubwordPrefix &&
                    !options.endOfWordSuffix;
  size_t pos = 0;
  while (pos < piece.size()) {
    size_t len = 1;
    if (!options.byteLevel)
      decodeUtf8(piece, pos, len);
    bool first = pos == 0, last = pos + len == piece.size();
    uint8_t byte = static_cast<uint8_t>(piece[pos]);
    if (plainBytes && byteIds[byte] >= 0) {
      if (unk) {
        symbols.push_back({unk->first, -1, -1, unk->second});
        unk.reset();
      }
      symbols.push_back({static_cast<uint32_t>(byteIds[byte]), -1, -1, 1});
    } else {
      std::string unit = options.byteLevel
                             ? byteLevelChar(byte)
                             : std::string(piece.substr(pos, len));
      addUnit(std::move(unit), first, last,
              static_cast<uint32_t>(
                  options.byteLevel ? byteLevelChar(byte).size() : len),
              unk, symbols);
    }
    pos += len;
  }
  if (unk)
    symbols.push_back({unk->first, -1, -1, unk->second});
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i].prev = static_cast<int32_t>(i) - 1;
    symbols[i].next = i + 1 < symbols.size() ? static_cast<int32_t>(i + 1) : -1;
  }
}

/// One character of merge_word's loop (the general path).
void BpeModel::addUnit(std::string unit, bool first, bool last,
                       uint32_t byteLen,
                       std::optional<std::pair<uint32_t, uint32_t>> &unk,
                       std::vector<Symbol> &symbols) const {
  if (!first && options.continuingSubwordPrefix)
    unit = *options.continuingSubwordPrefix + unit;
  if (last && options.endOfWordSuffix)
    unit += *options.endOfWordSuffix;

  auto it = vocab.find(unit);
  if (it != vocab.end()) {
    if (unk) {
      symbols.push_back({unk->first, -1, -1, unk->second});
      unk.reset();
    }
    symbols.push_back({it->second, -1, -1, byteLen});
    return;
  }
  if (options.byteFallback) {
    std::vector<uint32_t> byteTokens;
    for (char c : unit) {
      static const char kHex[] = "0123456789ABCDEF";
      uint8_t b = static_cast<uint8_t>(c);
      std::string name = {'<', '0', 'x', kHex[b >> 4], kHex[b & 0xF], '>'};
      auto byteIt = vocab.find(name);
      if (byteIt == vocab.end())
        break;
      byteTokens.push_back(byteIt->second);
    }
    if (byteTokens.size() == unit.size()) {
      // As in tokenizers, a pending unk is not flushed here: it stays
      // pending until the next in-vocabulary character or the end.
      for (uint32_t id : byteTokens)
        symbols.push_back({id, -1, -1, 1});
      return;
    }
  }
  if (!unkId)
    return;
  if (unk && options.fuseUnk) {
    unk->second += byteLen;
    return;
  }
  if (unk)
    symbols.push_back({unk->first, -1, -1, unk->second});
  unk = std::make_pair(*unkId, byteLen);
}

/// Word::merge_all without dropout: repeatedly apply the lowest-ranked merge
/// (leftmost on ties), skipping queue entries made stale by earlier merges.
void BpeModel::mergeAll(std::vector<Symbol> &symbols) const {
  if (symbols.size() < 2)
    return;
  struct Merge {
    uint32_t pos;
    uint32_t rank;
    uint32_t newId;
  };
  auto lowerPriority = [](const Merge &a, const Merge &b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Merge, std::vector<Merge>, decltype(lowerPriority)> queue(
      lowerPriority);
  auto findMerge = [&](uint32_t a, uint32_t b) -> const MergeInfo * {
    auto it = merges.find(pairKey(a, b));
    return it == merges.end() ? nullptr : &it->second;
  };

  for (size_t i = 0; i + 1 < symbols.size(); ++i)
    if (const MergeInfo *m = findMerge(symbols[i].id, symbols[i + 1].id))
      queue.push({static_cast<uint32_t>(i), m->rank, m->newId});

  while (!queue.empty()) {
    Merge top = queue.top();
    queue.pop();
    Symbol &current = symbols[top.pos];
    if (current.len == 0 || current.next == -1)
      continue;
    Symbol right = symbols[current.next];
    const MergeInfo *m = findMerge(current.id, right.id);
    if (!m || m->newId != top.newId)
      continue; // Stale: one side was merged into something else.

    symbols[current.next].len = 0;
    current.id = top.newId;
    current.len += right.len;
    current.next = right.next;
    if (right.next >= 0)
      symbols[right.next].prev = static_cast<int32_t>(top.pos);

    if (current.prev >= 0)
      if (const MergeInfo *pm = findMerge(symbols[current.prev].id, current.id))
        queue.push({static_cast<uint32_t>(current.prev), pm->rank, pm->newId});
    if (current.next >= 0)
      if (const MergeInfo *nm = findMerge(current.id, symbols[current.next].id))
        queue.push({top.pos, nm->rank, nm->newId});
  }
}

} // namespace tok
} // namespace llq
