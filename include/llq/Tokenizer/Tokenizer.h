//===- Tokenizer.h - Hugging Face BPE tokenizers ----------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// A reimplementation of the parts of Hugging Face `tokenizers` that
// LLaMA-family checkpoints use, reading their tokenizer.json and producing
// exactly the ids `tokenizers` produces, so llq can tokenize prompts and
// calibration text without Python.
//
// Supported tokenizer.json contents (anything else fails to load with an
// error naming the file and the unsupported component):
//   - model: BPE (vocab + merges as "a b" strings or [a, b] pairs; unk_token,
//     fuse_unk, byte_fallback, continuing_subword_prefix, end_of_word_suffix,
//     ignore_merges). dropout must be null or 0: it makes encoding random.
//   - normalizer: null.
//   - pre_tokenizer: null, ByteLevel (add_prefix_space, use_regex), Digits,
//     Split with the GPT-2 or the LLaMA3 regex (any behavior, invert), or a
//     Sequence of these with ByteLevel, if present, last.
//   - post_processor: null, ByteLevel, TemplateProcessing, or a Sequence.
//   - decoder: null or ByteLevel.
//   - added_tokens: any, except single_word ones; ids are assigned the way
//     tokenizers does it (existing vocabulary entry, else the next free id).
// truncation and padding are ignored: encode never truncates or pads.
//
// Character classes follow the Unicode versions inside tokenizers 0.21-0.23
// wheels (16.0.0 for the regexes, 17.0.0 for Digits); see
// python/tools/gen_unicode_tables.py.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_TOKENIZER_TOKENIZER_H
#define LLQ_TOKENIZER_TOKENIZER_H

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llq {

/// A loaded tokenizer.json. Immutable after loading except for an internal
/// cache, which is locked, so encode and decode may be called concurrently
/// from several threads.
class Tokenizer {
public:
  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  /// Loads a Hugging Face tokenizer.json. On failure returns null and sets
  /// \p error to a message naming \p path and, for valid files we cannot
  /// reproduce, the unsupported component.
  static std::unique_ptr<Tokenizer> load(const std::string &path,
                                         std::string &error);

  /// Parses tokenizer.json text held in memory; \p name stands in for the
  /// path in messages. Used by tests and fuzzers.
  static std::unique_ptr<Tokenizer> loadFromString(std::string_view json,
                                                   const std::string &name,
                                                   std::string &error);

  /// Token ids of \p text as tokenizers' encode(text,
  /// add_special_tokens=addSpecial) gives them. Added tokens appearing
  /// literally in the text are recognized, as tokenizers does.
  ///
  /// \p text should be UTF-8. Ill-formed sequences are replaced by U+FFFD
  /// first (maximal subparts, as Python's bytes.decode("utf-8", "replace")
  /// and Rust's from_utf8_lossy do), so the ids are those tokenizers gives
  /// for the repaired string; decode() then returns the repaired string.
  std::vector<int64_t> encode(std::string_view text,
                              bool addSpecial = true) const;

  /// The text of \p ids as tokenizers' decode(ids, skip_special_tokens=
  /// skipSpecial) gives it. Ids that are not in the vocabulary (including
  /// negative ones) are skipped, as tokenizers skips unknown ids; bytes that
  /// do not form UTF-8 come out as U+FFFD.
  std::string decode(const std::vector<int64_t> &ids,
                     bool skipSpecial = false) const;

  /// tokenizers' get_vocab_size(with_added_tokens=True): the number of
  /// distinct tokens, model vocabulary plus added tokens. For the dense ids
  /// real checkpoints use this is also one past the largest id, i.e. the
  /// embedding row count.
  int64_t vocabSize() const;

  /// The id of the token spelled \p token (added tokens first, then the
  /// model vocabulary, which for byte-level models is spelled in the
  /// byte-level alphabet, e.g. "Ġthe"), or nullopt.
  std::optional<int64_t> tokenId(std::string_view token) const;

  /// The spelling of token \p id (tokenizers' id_to_token), or nullopt.
  std::optional<std::string> tokenText(int64_t id) const;

  /// True if \p id belongs to an added token marked special (the tokens
  /// decode skips when asked to).
  bool isSpecial(int64_t id) const;

  /// The token encode(text, true) puts before the text: the special token
  /// right before the text in the post-processor's single-sequence template.
  /// Without such a template, the first special added token among
  /// <|begin_of_text|>, <s>, <bos> and <|startoftext|>; nullopt if there is
  /// none (GPT-2 style files do not say; their tokenizer_config.json does).
  std::optional<int64_t> bosId() const;

  /// The special token following the text in the template, else the first
  /// special added token among <|end_of_text|>, <|endoftext|>, </s> and
  /// <eos>; nullopt if none.
  std::optional<int64_t> eosId() const;

  /// Private; opaque to users.
  struct Impl;

private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl;
};

} // namespace llq

#endif // LLQ_TOKENIZER_TOKENIZER_H
