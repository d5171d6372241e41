//===- AddedVocabulary.h - tokenizers' added tokens -------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Added tokens (special tokens like <|endoftext|> and user-added ones) are
// found in the raw text before pre-tokenization and become single ids. This
// ports tokenizers' AddedVocabulary: id assignment on load, leftmost-longest
// matching, lstrip / rstrip, and the two passes (tokens with normalized=false
// on the raw text, then normalized=true ones on what is left).
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_TOKENIZER_ADDEDVOCABULARY_H
#define LLQ_LIB_TOKENIZER_ADDEDVOCABULARY_H

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace llq {
namespace tok {

struct AddedToken {
  std::string content;
  bool singleWord = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

/// A byte trie answering "the longest token starting here".
class TokenTrie {
public:
  void insert(std::string_view token, uint32_t id);
  bool empty() const { return nodes.size() <= 1; }

  /// Length of the longest token that \p s has at \p pos (0 if none); its id
  /// goes to \p id.
  size_t longestAt(std::string_view s, size_t pos, uint32_t &id) const;

private:
  struct Node {
    /// Sorted by byte.
    std::vector<std::pair<uint8_t, uint32_t>> children;
    std::optional<uint32_t> id;
  };
  uint32_t child(uint32_t node, uint8_t byte) const;

  std::vector<Node> nodes{Node()};
  bool isFirstByte[256] = {};
};

/// A piece of the input: either an added token (id set) or text to be
/// pre-tokenized. The view points into the encoded text.
struct Segment {
  std::string_view text;
  std::optional<uint32_t> id;
};

class AddedVocabulary {
public:
  /// Adds \p tokens the way tokenizers' add_tokens does on load: an existing
  /// token (added or in the model, looked up with \p modelLookup) keeps its
  /// id, a new one gets the next id after the model vocabulary
  /// (\p modelSize entries) and the added tokens so far.
  void add(const std::vector<AddedToken> &tokens, size_t modelSize,
           const std::function<std::optional<uint32_t>(std::string_view)>
               &modelLookup);

  std::optional<uint32_t> idOf(std::string_view content) const;
  const AddedToken *tokenOf(uint32_t id) const;
  bool isSpecialContent(std::string_view content) const {
    return specialContents.count(std::string(content)) != 0;
  }
  /// Number of distinct added contents.
  size_t size() const { return contentToId.size(); }
  const std::unordered_map<std::string, uint32_t> &contents() const {
    return contentToId;
  }

  /// Splits \p text into added tokens and the text between them, calling
  /// \p fn on each segment in order (empty text segments are skipped).
  void split(std::string_view text,
             const std::function<void(const Segment &)> &fn) const;

private:
  void findMatches(std::string_view sentence, const TokenTrie &trie,
                   const std::function<void(const Segment &)> &fn) const;

  std::unordered_map<std::string, uint32_t> contentToId;
  std::unordered_map<uint32_t, AddedToken> idToToken;
  std::unordered_set<std::string> specialContents;
  TokenTrie rawTrie;
  TokenTrie normalizedTrie;
};

} // namespace tok
} // namespace llq

#endif // LLQ_LIB_TOKENIZER_ADDEDVOCABULARY_H
