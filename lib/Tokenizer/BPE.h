//===- BPE.h - tokenizers' BPE model ----------------------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The BPE model of Hugging Face tokenizers (models/bpe): a vocabulary, ranked
// merges, and the priority-queue merge loop of Word::merge_all, ported
// step by step so ties and stale queue entries resolve exactly as there.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_TOKENIZER_BPE_H
#define LLQ_LIB_TOKENIZER_BPE_H

#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llq {
namespace tok {

class BpeModel {
public:
  struct Options {
    std::optional<std::string> unkToken;
    std::optional<std::string> continuingSubwordPrefix;
    std::optional<std::string> endOfWordSuffix;
    bool fuseUnk = false;
    bool byteFallback = false;
    /// A pre-token that is itself a vocabulary entry becomes that token
    /// without merging (LLaMA 3 sets this).
    bool ignoreMerges = false;
    /// Pre-tokens arrive as raw bytes and are spelled in the byte-level
    /// alphabet before lookup (set when a ByteLevel pre-tokenizer feeds the
    /// model; the pre-tokenizer leaves the mapping to us).
    bool byteLevel = false;
  };

  /// Builds the model. \p merges are in rank order. Fails, setting \p error,
  /// on ids outside [0, 2^32), merges naming tokens that are not in the
  /// vocabulary (as tokenizers does), or an unk token that is not in it.
  bool init(std::vector<std::pair<std::string, int64_t>> vocab,
            const std::vector<std::pair<std::string, std::string>> &merges,
            Options options, std::string &error);

  std::optional<uint32_t> tokenToId(std::string_view token) const;
  const std::string *idToToken(uint32_t id) const;
  /// Number of distinct vocabulary strings (tokenizers' get_vocab_size).
  size_t size() const { return vocab.size(); }

  /// Appends the ids of pre-token \p piece to \p out. Thread-safe.
  void tokenize(std::string_view piece, std::vector<int64_t> &out) const;

private:
  struct Symbol {
    uint32_t id;
    int32_t prev;
    int32_t next;
    uint32_t len;
  };
  struct MergeInfo {
    uint32_t rank;
    uint32_t newId;
  };

  static uint64_t pairKey(uint32_t a, uint32_t b) {
    return (static_cast<uint64_t>(a) << 32) | b;
  }

  void tokenizeUncached(std::string_view piece,
                        std::vector<uint32_t> &out) const;
  std::string modelSpelling(std::string_view piece) const;
  void splitIntoSymbols(std::string_view piece,
                        std::vector<Symbol> &symbols) const;
  void addUnit(std::string unit, bool first, bool last, uint32_t byteLen,
               std::optional<std::pair<uint32_t, uint32_t>> &unk,
               std::vector<Symbol> &symbols) const;
  void mergeAll(std::vector<Symbol> &symbols) const;

  Options options;
  std::unordered_map<std::string, uint32_t> vocab;
  std::unordered_map<uint32_t, std::string> vocabR;
  std::unordered_map<uint64_t, MergeInfo> merges;
  std::optional<uint32_t> unkId;
  /// For byte-level models without prefix/suffix: the id of each byte's
  /// alphabet character, or -1.
  int64_t byteIds[256];

  /// Pre-token -> ids. Words repeat a lot in natural text, so most
  /// pre-tokens skip the merge loop. Bounded like tokenizers' cache.
  mutable std::shared_mutex cacheMutex;
  mutable std::unordered_map<std::string, std::vector<uint32_t>> cache;
};

} // namespace tok
} // namespace llq

#endif // LLQ_LIB_TOKENIZER_BPE_H
