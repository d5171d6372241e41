//===- PreTokenizer.cpp - tokenizers' pre-tokenizers ----------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The regex scanners spell out what Oniguruma's backtracking does for each
// alternative of the two patterns, in alternative order; the comments quote
// the alternative each block implements. Every character is matched by some
// alternative of both patterns (a letter, a number, white space or "other"),
// so in practice the scanners never leave gaps, but the find_iter framing
// around them handles gaps the way tokenizers does anyway.
//
//===----------------------------------------------------------------------===//

#include "PreTokenizer.h"

#include "Unicode.h"

#include <string>

namespace llq {
namespace tok {

namespace {

constexpr size_t kNoMatch = static_cast<size_t>(-1);

//===----------------------------------------------------------------------===//
// Character predicates
//===----------------------------------------------------------------------===//

bool isLetter(uint32_t cp) { return charClass(cp) & kLetter; }
bool isNumber(uint32_t cp) { return charClass(cp) & kNumber; }
bool isSpace(uint32_t cp) { return charClass(cp) & kWhiteSpace; }
bool isNewline(uint32_t cp) { return cp == '\r' || cp == '\n'; }

/// [^\s\p{L}\p{N}]
bool isOther(uint32_t cp) {
  return !(charClass(cp) & (kLetter | kNumber | kWhiteSpace));
}

/// Returns the end of the run of code points satisfying \p pred from \p pos.
template <typename Pred>
size_t skipWhile(std::string_view s, size_t pos, Pred pred) {
  while (pos < s.size()) {
    size_t len;
    if (!pred(decodeUtf8(s, pos, len)))
      break;
    pos += len;
  }
  return pos;
}

/// Matches the ASCII letter \p lower at \p pos, in either case if
/// \p ignoreCase. Oniguruma's case-insensitive matching uses Unicode case
/// folding, under which U+017F LATIN SMALL LETTER LONG S is also an "s"; no
/// other code point folds to one of the contraction letters.
size_t matchLetter(std::string_view s, size_t pos, char lower,
                   bool ignoreCase) {
  if (pos >= s.size())
    return 0;
  size_t len;
  uint32_t cp = decodeUtf8(s, pos, len);
  if (cp == static_cast<uint32_t>(lower))
    return len;
  if (!ignoreCase)
    return 0;
  if (cp == static_cast<uint32_t>(lower - 'a' + 'A') ||
      (lower == 's' && cp == 0x17F))
    return len;
  return 0;
}

/// 's|'t|'re|'ve|'m|'ll|'d (optionally (?i:...)): returns the match length
/// or 0. The alternatives differ in their first letter, so their order does
/// not matter.
size_t matchContraction(std::string_view s, size_t pos, bool ignoreCase) {
  if (s[pos] != '\'')
    return 0;
  size_t p = pos + 1;
  for (char c : {'s', 't', 'm', 'd'})
    if (size_t len = matchLetter(s, p, c, ignoreCase))
      return 1 + len;
  for (const char *pair : {"re", "ve", "ll"}) {
    size_t first = matchLetter(s, p, pair[0], ignoreCase);
    if (!first)
      continue;
    if (size_t second = matchLetter(s, p + first, pair[1], ignoreCase))
      return 1 + first + second;
  }
  return 0;
}

/// " ?X+" for a class X: an optional U+0020 then one or more X. Returns the
/// end of the match or kNoMatch.
template <typename Pred>
size_t matchOptionalSpaceRun(std::string_view s, size_t pos, Pred pred) {
  size_t len;
  if (s[pos] == ' ' && pos + 1 < s.size() && pred(decodeUtf8(s, pos + 1, len)))
    return skipWhile(s, pos + 1 + len, pred);
  if (pred(decodeUtf8(s, pos, len)))
    return skipWhile(s, pos + len, pred);
  return kNoMatch;
}

/// \s+(?!\S)|\s+ at a white-space character: the whole run if it reaches the
/// end of the piece, else the run without its last character (so that
/// character can lead the next word), else (a single white-space character
/// before a non-space) that one character.
size_t matchSpaceRun(std::string_view s, size_t pos, size_t &lastNewline) {
  size_t end = pos, lastStart = pos;
  lastNewline = kNoMatch;
  while (end < s.size()) {
    size_t len;
    uint32_t cp = decodeUtf8(s, end, len);
    if (!isSpace(cp))
      break;
    if (isNewline(cp))
      lastNewline = end;
    lastStart = end;
    end += len;
  }
  if (end == s.size())
    return end;
  return lastStart > pos ? lastStart : end;
}

/// The GPT-2 pattern at \p pos.
size_t matchGpt2(std::string_view s, size_t pos) {
  // 's|'t|'re|'ve|'m|'ll|'d
  if (size_t len = matchContraction(s, pos, /*ignoreCase=*/false))
    return pos + len;
  //  ?\p{L}+
  size_t end = matchOptionalSpaceRun(s, pos, isLetter);
  //  ?\p{N}+
  if (end == kNoMatch)
    end = matchOptionalSpaceRun(s, pos, isNumber);
  //  ?[^\s\p{L}\p{N}]+
  if (end == kNoMatch)
    end = matchOptionalSpaceRun(s, pos, isOther);
  if (end != kNoMatch)
    return end;
  // \s+(?!\S)|\s+
  size_t len, lastNewline;
  if (isSpace(decodeUtf8(s, pos, len)))
    return matchSpaceRun(s, pos, lastNewline);
  return kNoMatch;
}

/// The LLaMA 3 pattern at \p pos.
size_t matchLlama3(std::string_view s, size_t pos) {
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (size_t len = matchContraction(s, pos, /*ignoreCase=*/true))
    return pos + len;
  size_t len0;
  uint32_t c0 = decodeUtf8(s, pos, len0);
  uint8_t class0 = charClass(c0);
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!(class0 & (kLetter | kNumber)) && !isNewline(c0) &&
      pos + len0 < s.size()) {
    size_t len1;
    if (isLetter(decodeUtf8(s, pos + len0, len1)))
      return skipWhile(s, pos + len0 + len1, isLetter);
  }
  if (class0 & kLetter)
    return skipWhile(s, pos + len0, isLetter);
  // \p{N}{1,3}
  if (class0 & kNumber) {
    size_t end = pos + len0;
    for (int i = 1; i < 3 && end < s.size(); ++i) {
      size_t len;
      if (!isNumber(decodeUtf8(s, end, len)))
        break;
      end += len;
    }
    return end;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t end = matchOptionalSpaceRun(s, pos, isOther);
  if (end != kNoMatch) {
    while (end < s.size() && (s[end] == '\r' || s[end] == '\n'))
      ++end;
    return end;
  }
  if (!(class0 & kWhiteSpace))
    return kNoMatch;
  // \s*[\r\n]+ ends at the last newline of the white-space run (\s* gives
  // back characters until [\r\n]+ can match, which is at the last newline).
  // Failing that, \s+(?!\S)|\s+.
  size_t lastNewline;
  end = matchSpaceRun(s, pos, lastNewline);
  return lastNewline != kNoMatch ? lastNewline + 1 : end;
}

//===----------------------------------------------------------------------===//
// Split behaviors
//===----------------------------------------------------------------------===//

/// Turns the spans of a pattern into pieces according to a SplitBehavior,
/// exactly as tokenizers' NormalizedString::split does, but streaming: it
/// holds back at most one pending piece.
class SpanSplitter {
public:
  SpanSplitter(std::string_view s, SplitBehavior behavior, bool invert,
               const PieceFn &emit)
      : s(s), behavior(behavior), invert(invert), emit(emit) {}

  void push(Span span) {
    if (invert)
      span.isMatch = !span.isMatch;
    switch (behavior) {
    case SplitBehavior::Isolated:
      output(span.begin, span.end);
      break;
    case SplitBehavior::Removed:
      if (!span.isMatch)
        output(span.begin, span.end);
      break;
    case SplitBehavior::Contiguous:
      extendOrStart(span, span.isMatch == previousMatch);
      break;
    case SplitBehavior::MergedWithPrevious:
      extendOrStart(span, span.isMatch && !previousMatch);
      break;
    case SplitBehavior::MergedWithNext:
      mergeWithNext(span);
      break;
    }
    previousMatch = span.isMatch;
  }

  void finish() {
    if (hasPending)
      output(pending.begin, pending.end);
    hasPending = false;
  }

private:
  void output(size_t begin, size_t end) {
    if (end > begin)
      emit(s.substr(begin, end - begin));
  }

  /// Contiguous and MergedWithPrevious: grow the pending piece over \p span
  /// if \p extend, else flush it and start a new one.
  void extendOrStart(Span span, bool extend) {
    if (extend && hasPending) {
      pending.end = span.end;
      return;
    }
    finish();
    pending = span;
    hasPending = true;
  }

  /// MergedWithNext: a match is glued to the non-match that follows it.
  /// tokenizers folds over the spans backwards; going forwards, only a
  /// pending match has to wait for its successor.
  void mergeWithNext(Span span) {
    if (hasPending) {
      hasPending = false;
      if (!span.isMatch) {
        output(pending.begin, span.end);
        return;
      }
      output(pending.begin, pending.end);
    }
    if (span.isMatch) {
      pending = span;
      hasPending = true;
    } else {
      output(span.begin, span.end);
    }
  }

  std::string_view s;
  SplitBehavior behavior;
  bool invert;
  const PieceFn &emit;
  Span pending{0, 0, false};
  bool hasPending = false;
  bool previousMatch = false;
};

/// tokenizers' find_matches for a predicate on characters (used by Digits
/// with char::is_numeric): each matching character is a span of its own.
void forEachNumericSpan(std::string_view s,
                        const std::function<void(Span)> &fn) {
  size_t last = 0;
  for (size_t pos = 0; pos < s.size();) {
    size_t len;
    uint32_t cp = decodeUtf8(s, pos, len);
    if (charClass(cp) & kRustNumeric) {
      if (last < pos)
        fn({last, pos, false});
      fn({pos, pos + len, true});
      last = pos + len;
    }
    pos += len;
  }
  if (last < s.size())
    fn({last, s.size(), false});
}

} // namespace

std::optional<SplitBehavior> parseSplitBehavior(std::string_view name) {
  if (name == "Removed")
    return SplitBehavior::Removed;
  if (name == "Isolated")
    return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious")
    return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext")
    return SplitBehavior::MergedWithNext;
  if (name == "Contiguous")
    return SplitBehavior::Contiguous;
  return std::nullopt;
}

std::optional<SplitRegex> recognizeSplitRegex(std::string_view pattern) {
  static constexpr std::string_view kGpt2 =
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
  static constexpr std::string_view kLlama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (pattern == kGpt2)
    return SplitRegex::Gpt2;
  if (pattern == kLlama3)
    return SplitRegex::Llama3;
  return std::nullopt;
}

void forEachRegexSpan(SplitRegex regex, std::string_view s,
                      const std::function<void(Span)> &fn) {
  size_t prev = 0;
  for (size_t pos = 0; pos < s.size();) {
    size_t end =
        regex == SplitRegex::Gpt2 ? matchGpt2(s, pos) : matchLlama3(s, pos);
    if (end == kNoMatch || end <= pos) {
      size_t len;
      decodeUtf8(s, pos, len);
      pos += len;
      continue;
    }
    if (prev != pos)
      fn({prev, pos, false});
    fn({pos, end, true});
    prev = pos = end;
  }
  if (prev != s.size())
    fn({prev, s.size(), false});
}

void PreTokenizer::runStep(size_t index, std::string_view piece,
                           const PieceFn &emit) const {
  if (piece.empty())
    return;
  if (index == steps.size()) {
    emit(piece);
    return;
  }
  const PreTokenizerStep &step = steps[index];
  // The callback captures a single pointer so std::function stores it
  // without allocating: this runs once per piece.
  struct NextStep {
    const PreTokenizer *self;
    size_t index;
    const PieceFn *emit;
  } ctx{this, index + 1, &emit};
  PieceFn next = [&ctx](std::string_view sub) {
    ctx.self->runStep(ctx.index, sub, *ctx.emit);
  };

  switch (step.kind) {
  case PreTokenizerStep::Kind::ByteLevel: {
    // The byte-to-alphabet mapping itself is left to the model.
    std::string prefixed;
    if (step.addPrefixSpace && piece[0] != ' ') {
      prefixed = " ";
      prefixed.append(piece);
      piece = prefixed;
    }
    if (!step.useRegex) {
      next(piece);
      return;
    }
    SpanSplitter splitter(piece, SplitBehavior::Isolated, false, next);
    forEachRegexSpan(SplitRegex::Gpt2, piece,
                     [&](Span span) { splitter.push(span); });
    splitter.finish();
    return;
  }
  case PreTokenizerStep::Kind::Digits: {
    SpanSplitter splitter(piece,
                          step.individualDigits ? SplitBehavior::Isolated
                                                : SplitBehavior::Contiguous,
                          false, next);
    forEachNumericSpan(piece, [&](Span span) { splitter.push(span); });
    splitter.finish();
    return;
  }
  case PreTokenizerStep::Kind::Split: {
    SpanSplitter splitter(piece, step.behavior, step.invert, next);
    forEachRegexSpan(step.regex, piece,
                     [&](Span span) { splitter.push(span); });
    splitter.finish();
    return;
  }
  }
}

} // namespace tok
} // namespace llq
