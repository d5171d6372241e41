//===- TokenizerImpl.h - the parts of a loaded tokenizer --------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Tokenizer::Impl, shared by the loader (TokenizerJSON.cpp), which fills it
// from tokenizer.json, and Tokenizer.cpp, which runs the pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_LIB_TOKENIZER_TOKENIZERIMPL_H
#define LLQ_LIB_TOKENIZER_TOKENIZERIMPL_H

#include "AddedVocabulary.h"
#include "BPE.h"
#include "PreTokenizer.h"

#include "llq/Tokenizer/Tokenizer.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llq {

struct Tokenizer::Impl {
  /// One element of a TemplateProcessing "single" template.
  struct TemplatePiece {
    /// True for {"Sequence": {"id": "A"}}: the encoded text goes here.
    bool isSequence = false;
    /// The ids of a {"SpecialToken": ...} piece.
    std::vector<int64_t> ids;
  };
  using Template = std::vector<TemplatePiece>;

  enum class Decoder { None, ByteLevel };

  std::string name;
  tok::BpeModel model;
  tok::AddedVocabulary added;
  tok::PreTokenizer preTokenizer;
  /// TemplateProcessing templates of the post-processor, applied in order
  /// (ByteLevel post-processors only adjust offsets, so they leave none).
  std::vector<Template> templates;
  Decoder decoder = Decoder::None;
  std::optional<int64_t> bos;
  std::optional<int64_t> eos;

  /// Parses tokenizer.json text into a new Impl named \p name; on failure
  /// returns null with \p error (not yet prefixed by the name).
  static std::unique_ptr<Impl> parse(std::string_view json, std::string name,
                                     std::string &error);
};

} // namespace llq

#endif // LLQ_LIB_TOKENIZER_TOKENIZERIMPL_H
