//===- PreTokenizer.h - tokenizers' pre-tokenizers --------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The pre-tokenizers LLaMA-family tokenizer.json files use: ByteLevel,
// Digits, and Split with one of two known regexes. The regexes are not run by
// a regex engine: each is a hand-written scanner that reproduces Oniguruma's
// leftmost-first backtracking result for that one pattern.
//
// Pre-tokens are produced in a streaming fashion (each handed to a callback
// as soon as it is known), so encoding a large text never materializes the
// list of all of its pieces.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_TOKENIZER_PRETOKENIZER_H
#define LLQ_LIB_TOKENIZER_PRETOKENIZER_H

#include <cstddef>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace llq {
namespace tok {

/// tokenizers' SplitDelimiterBehavior: what becomes of the pattern's matches.
enum class SplitBehavior {
  Removed,
  Isolated,
  MergedWithPrevious,
  MergedWithNext,
  Contiguous,
};

/// Parses a behavior name as tokenizer.json spells it ("Isolated", ...).
std::optional<SplitBehavior> parseSplitBehavior(std::string_view name);

/// The Split regexes llq implements.
enum class SplitRegex {
  /// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  /// (GPT-2; also what ByteLevel with use_regex applies).
  Gpt2,
  /// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
  ///  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+   (LLaMA 3)
  Llama3,
};

/// The scanner for regex source \p pattern, if it is one llq knows.
std::optional<SplitRegex> recognizeSplitRegex(std::string_view pattern);

/// One pre-tokenizer of a (possibly single-element) Sequence.
struct PreTokenizerStep {
  enum class Kind { ByteLevel, Digits, Split };
  Kind kind = Kind::ByteLevel;
  // ByteLevel.
  bool addPrefixSpace = false;
  bool useRegex = true;
  // Digits.
  bool individualDigits = false;
  // Split.
  SplitRegex regex = SplitRegex::Gpt2;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
};

/// Callback receiving each non-empty pre-token. The view is only valid
/// during the call.
using PieceFn = std::function<void(std::string_view)>;

/// A sequence of pre-tokenizer steps. The steps run in order on every piece
/// the previous ones produced; ByteLevel, if present, must be last (it is
/// then done by the model, which maps bytes to its alphabet itself).
class PreTokenizer {
public:
  std::vector<PreTokenizerStep> steps;

  /// Splits \p text (well-formed UTF-8) and calls \p emit on each pre-token.
  void run(std::string_view text, const PieceFn &emit) const {
    runStep(0, text, emit);
  }

private:
  void runStep(size_t index, std::string_view piece, const PieceFn &emit) const;
};

/// A match or gap of a pattern over a piece, as tokenizers' find_matches
/// reports it (byte offsets into the piece).
struct Span {
  size_t begin;
  size_t end;
  bool isMatch;
};

/// Calls \p fn with the spans of \p regex over \p s: every match and every
/// gap between them, in order, covering \p s.
void forEachRegexSpan(SplitRegex regex, std::string_view s,
                      const std::function<void(Span)> &fn);

} // namespace tok
} // namespace llq

#endif // LLQ_LIB_TOKENIZER_PRETOKENIZER_H
