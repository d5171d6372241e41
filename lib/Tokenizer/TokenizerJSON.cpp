//===- TokenizerJSON.cpp - reading tokenizer.json -------------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Builds a Tokenizer::Impl from tokenizer.json with LLVM's JSON parser. Every
// component is checked against what llq reproduces; anything else is an
// error naming the component rather than a silently different tokenization.
//
// llvm::json::parse recurses once per nesting level, so a hostile file of
// nested brackets could exhaust the stack; the depth is checked first.
//
//===----------------------------------------------------------------------===//

#include "TokenizerImpl.h"

// LLVM's headers are not -Wextra clean for GCC; they are not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"
#pragma GCC diagnostic pop

#include <algorithm>

namespace llq {

namespace {

using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

/// Real files nest about six levels deep.
constexpr unsigned kMaxJsonDepth = 128;

/// Quotes text from the file for a message, shortened.
std::string quote(llvm::StringRef s) {
  constexpr size_t kMaxShown = 200;
  std::string out = "'";
  out.append(s.take_front(kMaxShown).str());
  if (s.size() > kMaxShown)
    out += "...";
  out += '\'';
  return out;
}

/// Fails if brackets nest deeper than kMaxJsonDepth (outside strings).
bool checkDepth(std::string_view json, std::string &error) {
  unsigned depth = 0;
  bool inString = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        error = "JSON nests deeper than " + std::to_string(kMaxJsonDepth) +
                " levels (at byte " + std::to_string(i) + ")";
        return false;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

class Loader {
public:
  Loader(Tokenizer::Impl &impl, std::string &error)
      : impl(impl), error(error) {}

  bool load(const Object &root);

private:
  bool fail(std::string message) {
    error = std::move(message);
    return false;
  }

  /// Reads an optional boolean \p key of \p o (missing or null: \p value is
  /// left unchanged).
  bool readBool(const Object &o, llvm::StringRef key, llvm::StringRef what,
                bool &value);
  /// Reads an optional string (missing or null: nullopt).
  bool readOptString(const Object &o, llvm::StringRef key, llvm::StringRef what,
                     std::optional<std::string> &value);

  bool checkVersion(const Object &root);
  bool checkNormalizer(const Value *v);
  bool readPreTokenizer(const Value *v, std::vector<tok::PreTokenizerStep> &);
  bool readSplit(const Object &o, tok::PreTokenizerStep &step);
  bool readModel(const Value *v, bool byteLevel);
  bool readVocab(const Object &model,
                 std::vector<std::pair<std::string, int64_t>> &vocab);
  bool readMerges(const Object &model,
                  std::vector<std::pair<std::string, std::string>> &merges);
  bool readAddedTokens(const Value *v);
  bool readPostProcessor(const Value *v);
  bool readTemplate(const Object &o);
  bool readDecoder(const Value *v);
  void findBosEos();

  Tokenizer::Impl &impl;
  std::string &error;
};

std::optional<llvm::StringRef> typeOf(const Object &o) {
  return o.getString("type");
}

bool Loader::readBool(const Object &o, llvm::StringRef key,
                      llvm::StringRef what, bool &value) {
  const Value *v = o.get(key);
  if (!v || v->getAsNull())
    return true;
  std::optional<bool> b = v->getAsBoolean();
  if (!b)
    return fail(what.str() + " field '" + key.str() + "' is not a boolean");
  value = *b;
  return true;
}

bool Loader::readOptString(const Object &o, llvm::StringRef key,
                           llvm::StringRef what,
                           std::optional<std::string> &value) {
  const Value *v = o.get(key);
  if (!v || v->getAsNull())
    return true;
  std::optional<llvm::StringRef> s = v->getAsString();
  if (!s)
    return fail(what.str() + " field '" + key.str() + "' is not a string");
  value = s->str();
  return true;
}

bool Loader::load(const Object &root) {
  std::vector<tok::PreTokenizerStep> steps;
  if (!checkVersion(root) || !checkNormalizer(root.get("normalizer")) ||
      !readPreTokenizer(root.get("pre_tokenizer"), steps))
    return false;
  // ByteLevel must come last: the model does its byte mapping.
  for (size_t i = 0; i < steps.size(); ++i)
    if (steps[i].kind == tok::PreTokenizerStep::Kind::ByteLevel &&
        i + 1 != steps.size())
      return fail("unsupported pre-tokenizer: ByteLevel followed by other "
                  "pre-tokenizers");
  bool byteLevel = !steps.empty() &&
                   steps.back().kind == tok::PreTokenizerStep::Kind::ByteLevel;
  impl.preTokenizer.steps = std::move(steps);

  if (!readModel(root.get("model"), byteLevel) ||
      !readAddedTokens(root.get("added_tokens")) ||
      !readPostProcessor(root.get("post_processor")) ||
      !readDecoder(root.get("decoder")))
    return false;
  findBosEos();
  return true;
}

bool Loader::checkVersion(const Object &root) {
  const Value *v = root.get("version");
  if (!v)
    return true;
  std::optional<llvm::StringRef> version = v->getAsString();
  if (!version || *version != "1.0")
    return fail("unknown tokenizer.json version " +
                quote(version ? *version : "?") + " (expected '1.0')");
  return true;
}

bool Loader::checkNormalizer(const Value *v) {
  if (!v || v->getAsNull())
    return true;
  const Object *o = v->getAsObject();
  if (!o)
    return fail("normalizer is not an object");
  std::optional<llvm::StringRef> type = typeOf(*o);
  if (type && *type == "Sequence") {
    const Array *list = o->getArray("normalizers");
    if (list && list->empty())
      return true;
  }
  return fail("unsupported normalizer " + quote(type ? *type : "?") +
              " (only null is supported)");
}

bool Loader::readPreTokenizer(const Value *v,
                              std::vector<tok::PreTokenizerStep> &steps) {
  if (!v || v->getAsNull())
    return true;
  const Object *o = v->getAsObject();
  if (!o)
    return fail("pre_tokenizer is not an object");
  std::optional<llvm::StringRef> type = typeOf(*o);
  if (!type)
    return fail("pre_tokenizer has no type");

  using Kind = tok::PreTokenizerStep::Kind;
  tok::PreTokenizerStep step;
  if (*type == "Sequence") {
    const Array *list = o->getArray("pretokenizers");
    if (!list)
      return fail("Sequence pre-tokenizer has no 'pretokenizers' list");
    for (const Value &element : *list)
      if (!readPreTokenizer(&element, steps))
        return false;
    return true;
  }
  if (*type == "ByteLevel") {
    // tokenizers' defaults for missing fields.
    step.kind = Kind::ByteLevel;
    step.addPrefixSpace = true;
    step.useRegex = true;
    if (!readBool(*o, "add_prefix_space", "ByteLevel", step.addPrefixSpace) ||
        !readBool(*o, "use_regex", "ByteLevel", step.useRegex))
      return false;
  } else if (*type == "Digits") {
    step.kind = Kind::Digits;
    if (!readBool(*o, "individual_digits", "Digits", step.individualDigits))
      return false;
  } else if (*type == "Split") {
    step.kind = Kind::Split;
    if (!readSplit(*o, step))
      return false;
  } else {
    return fail("unsupported pre-tokenizer " + quote(*type) +
                " (supported: ByteLevel, Digits, Split, Sequence)");
  }
  steps.push_back(step);
  return true;
}

bool Loader::readSplit(const Object &o, tok::PreTokenizerStep &step) {
  const Object *pattern = o.getObject("pattern");
  if (!pattern)
    return fail("Split pre-tokenizer has no pattern object");
  if (std::optional<llvm::StringRef> s = pattern->getString("String"))
    return fail("unsupported pre-tokenizer Split with String pattern " +
                quote(*s));
  std::optional<llvm::StringRef> regex = pattern->getString("Regex");
  if (!regex)
    return fail("Split pre-tokenizer pattern has no Regex");
  std::optional<tok::SplitRegex> known =
      tok::recognizeSplitRegex(std::string_view(regex->data(), regex->size()));
  if (!known)
    return fail("unsupported pre-tokenizer Split regex " + quote(*regex) +
                " (only the GPT-2 and LLaMA 3 patterns are implemented)");
  step.regex = *known;

  std::optional<llvm::StringRef> behavior = o.getString("behavior");
  std::optional<tok::SplitBehavior> parsed;
  if (behavior)
    parsed = tok::parseSplitBehavior(
        std::string_view(behavior->data(), behavior->size()));
  if (!parsed)
    return fail("Split pre-tokenizer has an unknown behavior");
  step.behavior = *parsed;
  return readBool(o, "invert", "Split", step.invert);
}

bool Loader::readModel(const Value *v, bool byteLevel) {
  const Object *model = v ? v->getAsObject() : nullptr;
  if (!model)
    return fail("no model object");
  std::optional<llvm::StringRef> type = typeOf(*model);
  // Old files omit the type; tokenizers then recognizes BPE by its fields.
  if (type ? *type != "BPE" : !model->get("merges"))
    return fail("unsupported model type " + quote(type ? *type : "?") +
                " (only BPE is supported)");

  tok::BpeModel::Options options;
  options.byteLevel = byteLevel;
  if (const Value *dropout = model->get("dropout")) {
    std::optional<double> p = dropout->getAsNumber();
    if (!dropout->getAsNull() && (!p || *p != 0.0))
      return fail("unsupported BPE dropout (it makes encoding random)");
  }
  if (!readOptString(*model, "unk_token", "BPE", options.unkToken) ||
      !readOptString(*model, "continuing_subword_prefix", "BPE",
                     options.continuingSubwordPrefix) ||
      !readOptString(*model, "end_of_word_suffix", "BPE",
                     options.endOfWordSuffix) ||
      !readBool(*model, "fuse_unk", "BPE", options.fuseUnk) ||
      !readBool(*model, "byte_fallback", "BPE", options.byteFallback) ||
      !readBool(*model, "ignore_merges", "BPE", options.ignoreMerges))
    return false;

  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  if (!readVocab(*model, vocab) || !readMerges(*model, merges))
    return false;
  std::string modelError;
  if (!impl.model.init(std::move(vocab), merges, std::move(options),
                       modelError))
    return fail("BPE model: " + modelError);
  return true;
}

bool Loader::readVocab(const Object &model,
                       std::vector<std::pair<std::string, int64_t>> &vocab) {
  const Object *object = model.getObject("vocab");
  if (!object)
    return fail("BPE model has no vocab object");
  vocab.reserve(object->size());
  for (const auto &entry : *object) {
    std::optional<int64_t> id = entry.second.getAsInteger();
    if (!id)
      return fail("BPE vocab entry " + quote(entry.first) +
                  " is not an integer");
    vocab.emplace_back(entry.first.str(), *id);
  }
  return true;
}

bool Loader::readMerges(
    const Object &model,
    std::vector<std::pair<std::string, std::string>> &merges) {
  const Array *list = model.getArray("merges");
  if (!list)
    return fail("BPE model has no merges list");
  merges.reserve(list->size());
  bool legacy = !list->empty() && (*list)[0].getAsString();
  for (const Value &element : *list) {
    std::string where = "BPE merge " + std::to_string(merges.size() + 1);
    if (legacy) {
      // "a b", split on every space; "#version" lines are comments.
      std::optional<llvm::StringRef> line = element.getAsString();
      if (!line)
        return fail(where + " is not a string like the ones before it");
      if (line->starts_with("#version"))
        continue;
      auto [a, b] = line->split(' ');
      if (!line->contains(' ') || b.contains(' '))
        return fail(where + " " + quote(*line) + " is not two tokens");
      merges.emplace_back(a.str(), b.str());
      continue;
    }
    const Array *pair = element.getAsArray();
    std::optional<llvm::StringRef> a, b;
    if (pair && pair->size() == 2) {
      a = (*pair)[0].getAsString();
      b = (*pair)[1].getAsString();
    }
    if (!a || !b)
      return fail(where + " is not a pair of strings");
    merges.emplace_back(a->str(), b->str());
  }
  return true;
}

bool Loader::readAddedTokens(const Value *v) {
  std::vector<tok::AddedToken> tokens;
  const Array *list = v ? v->getAsArray() : nullptr;
  if (v && !list && !v->getAsNull())
    return fail("added_tokens is not a list");
  static const Array kNone;
  for (const Value &element : list ? *list : kNone) {
    const Object *o = element.getAsObject();
    std::optional<llvm::StringRef> content =
        o ? o->getString("content") : std::nullopt;
    if (!content)
      return fail("added token without a content string");
    tok::AddedToken token;
    token.content = content->str();
    if (!readBool(*o, "special", "added token", token.special))
      return false;
    token.normalized = !token.special;
    if (!readBool(*o, "single_word", "added token", token.singleWord) ||
        !readBool(*o, "lstrip", "added token", token.lstrip) ||
        !readBool(*o, "rstrip", "added token", token.rstrip) ||
        !readBool(*o, "normalized", "added token", token.normalized))
      return false;
    if (token.singleWord)
      return fail("unsupported added token " + quote(*content) +
                  " with single_word");
    tokens.push_back(std::move(token));
  }
  const tok::BpeModel &model = impl.model;
  impl.added.add(tokens, model.size(), [&](std::string_view content) {
    return model.tokenToId(content);
  });
  return true;
}

bool Loader::readPostProcessor(const Value *v) {
  if (!v || v->getAsNull())
    return true;
  const Object *o = v->getAsObject();
  std::optional<llvm::StringRef> type = o ? typeOf(*o) : std::nullopt;
  if (!type)
    return fail("post_processor has no type");
  if (*type == "ByteLevel")
    return true; // Only trims offsets.
  if (*type == "TemplateProcessing")
    return readTemplate(*o);
  if (*type == "Sequence") {
    const Array *list = o->getArray("processors");
    if (!list)
      return fail("Sequence post-processor has no 'processors' list");
    for (const Value &element : *list)
      if (!readPostProcessor(&element))
        return false;
    return true;
  }
  return fail("unsupported post-processor " + quote(*type) +
              " (supported: ByteLevel, TemplateProcessing, Sequence)");
}

bool Loader::readTemplate(const Object &o) {
  const Array *single = o.getArray("single");
  const Object *specials = o.getObject("special_tokens");
  if (!single || !specials)
    return fail("TemplateProcessing without 'single' or 'special_tokens'");
  Tokenizer::Impl::Template result;
  for (const Value &element : *single) {
    const Object *piece = element.getAsObject();
    const Object *sequence = piece ? piece->getObject("Sequence") : nullptr;
    const Object *special = piece ? piece->getObject("SpecialToken") : nullptr;
    Tokenizer::Impl::TemplatePiece out;
    if (sequence) {
      if (sequence->getString("id") != llvm::StringRef("A"))
        return fail("TemplateProcessing single template uses a sequence "
                    "other than A");
      out.isSequence = true;
    } else if (special) {
      std::optional<llvm::StringRef> name = special->getString("id");
      const Object *entry = name ? specials->getObject(*name) : nullptr;
      const Array *ids = entry ? entry->getArray("ids") : nullptr;
      if (!ids)
        return fail("TemplateProcessing special token " +
                    quote(name ? *name : "?") + " has no ids");
      for (const Value &id : *ids) {
        std::optional<int64_t> n = id.getAsInteger();
        if (!n || *n < 0)
          return fail("TemplateProcessing special token " + quote(*name) +
                      " has an invalid id");
        out.ids.push_back(*n);
      }
    } else {
      return fail("TemplateProcessing template piece is neither Sequence "
                  "nor SpecialToken");
    }
    result.push_back(std::move(out));
  }
  impl.templates.push_back(std::move(result));
  return true;
}

bool Loader::readDecoder(const Value *v) {
  if (!v || v->getAsNull())
    return true;
  const Object *o = v->getAsObject();
  std::optional<llvm::StringRef> type = o ? typeOf(*o) : std::nullopt;
  if (type && *type == "ByteLevel") {
    impl.decoder = Tokenizer::Impl::Decoder::ByteLevel;
    return true;
  }
  return fail("unsupported decoder " + quote(type ? *type : "?") +
              " (supported: null, ByteLevel)");
}

/// BOS and EOS from the first template, else from well-known names.
void Loader::findBosEos() {
  if (!impl.templates.empty()) {
    const Tokenizer::Impl::Template &t = impl.templates.front();
    auto first = std::find_if(t.begin(), t.end(),
                              [](const auto &p) { return p.isSequence; });
    if (first != t.end()) {
      if (first != t.begin() && !std::prev(first)->ids.empty())
        impl.bos = std::prev(first)->ids.back();
      if (std::next(first) != t.end() && !std::next(first)->ids.empty())
        impl.eos = std::next(first)->ids.front();
    }
  }
  auto special =
      [&](std::initializer_list<const char *> names) -> std::optional<int64_t> {
    for (const char *name : names)
      if (impl.added.isSpecialContent(name))
        return impl.added.idOf(name);
    return std::nullopt;
  };
  if (!impl.bos)
    impl.bos =
        special({"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"});
  if (!impl.eos)
    impl.eos = special({"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"});
}

} // namespace

std::unique_ptr<Tokenizer::Impl> Tokenizer::Impl::parse(std::string_view json,
                                                        std::string name,
                                                        std::string &error) {
  if (!checkDepth(json, error))
    return nullptr;
  llvm::Expected<Value> parsed =
      llvm::json::parse(llvm::StringRef(json.data(), json.size()));
  if (!parsed) {
    error = "invalid JSON: " + llvm::toString(parsed.takeError());
    return nullptr;
  }
  const Object *root = parsed->getAsObject();
  if (!root) {
    error = "the JSON document is not an object";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  impl->name = std::move(name);
  Loader loader(*impl, error);
  if (!loader.load(*root))
    return nullptr;
  return impl;
}

} // namespace llq
