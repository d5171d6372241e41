//===- Packing.cpp - Bit packing of quantized codes -----------------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// Rows are processed in blocks of 32 codes: 32 codes of width b fill exactly b
// words, so every block starts on a word boundary and the position of each
// code inside its block is a compile-time constant. The per-code steps are
// expanded over an index pack rather than left to a loop, so each shift and
// mask is a constant and the word-straddling step only exists for the widths
// that need it (3, 5, 6, 7); widths dividing 32 (1, 2, 4, 8) compile to
// straight shifts and ors. A short last block goes through a zero-filled
// scratch block, which also guarantees zero padding bits.
//
//===----------------------------------------------------------------------===//

#include "llq/Quant/Packing.h"

#include <algorithm>
#include <cassert>
#include <type_traits>
#include <utility>

namespace llq::quant {

namespace {

constexpr int kBlockCodes = 32;
using BlockIndices = std::make_integer_sequence<int, kBlockCodes>;

template <int Bits> constexpr uint32_t codeMask = (1u << Bits) - 1;

/// Calls \p fn with std::integral_constant<int, bits>, turning the runtime
/// width into a template argument.
template <typename Fn> void withBits(int bits, Fn fn) {
  switch (bits) {
  case 1:
    return fn(std::integral_constant<int, 1>());
  case 2:
    return fn(std::integral_constant<int, 2>());
  case 3:
    return fn(std::integral_constant<int, 3>());
  case 4:
    return fn(std::integral_constant<int, 4>());
  case 5:
    return fn(std::integral_constant<int, 5>());
  case 6:
    return fn(std::integral_constant<int, 6>());
  case 7:
    return fn(std::integral_constant<int, 7>());
  case 8:
    return fn(std::integral_constant<int, 8>());
  default:
    assert(false && "code width must be in 1..8");
  }
}

/// Ors code \p K of a block into the block's words.
template <int Bits, int K> void putCode(uint32_t code, uint32_t *words) {
  constexpr int word = K * Bits / 32, shift = K * Bits % 32;
  code &= codeMask<Bits>;
  words[word] |= code << shift;
  if constexpr (shift + Bits > 32)
    words[word + 1] |= code >> (32 - shift);
}

/// Reads code \p K of a block from the block's words.
template <int Bits, int K> uint8_t getCode(const uint32_t *words) {
  constexpr int word = K * Bits / 32, shift = K * Bits % 32;
  uint32_t code = words[word] >> shift;
  if constexpr (shift + Bits > 32)
    code |= words[word + 1] << (32 - shift);
  return static_cast<uint8_t>(code & codeMask<Bits>);
}

/// Packs 32 codes into Bits words.
template <int Bits, int... K>
void packBlock(const uint8_t *codes, uint32_t *out,
               std::integer_sequence<int, K...>) {
  uint32_t words[Bits] = {};
  (putCode<Bits, K>(codes[K], words), ...);
  std::copy(words, words + Bits, out);
}

/// Unpacks Bits words into 32 codes.
template <int Bits, int... K>
void unpackBlock(const uint32_t *words, uint8_t *out,
                 std::integer_sequence<int, K...>) {
  ((out[K] = getCode<Bits, K>(words)), ...);
}

template <int Bits>
void packRow(const uint8_t *codes, int64_t cols, uint32_t *out) {
  int64_t fullBlocks = cols / kBlockCodes;
  for (int64_t b = 0; b < fullBlocks; ++b)
    packBlock<Bits>(codes + b * kBlockCodes, out + b * Bits, BlockIndices());
  int64_t tail = cols % kBlockCodes;
  if (tail == 0)
    return;
  uint8_t scratchCodes[kBlockCodes] = {};
  uint32_t scratchWords[Bits];
  std::copy_n(codes + fullBlocks * kBlockCodes, tail, scratchCodes);
  packBlock<Bits>(scratchCodes, scratchWords, BlockIndices());
  std::copy_n(scratchWords, packedWordsPerRow(tail, Bits),
              out + fullBlocks * Bits);
}

template <int Bits>
void unpackRow(const uint32_t *packed, int64_t cols, uint8_t *out) {
  int64_t fullBlocks = cols / kBlockCodes;
  for (int64_t b = 0; b < fullBlocks; ++b)
    unpackBlock<Bits>(packed + b * Bits, out + b * kBlockCodes, BlockIndices());
  int64_t tail = cols % kBlockCodes;
  if (tail == 0)
    return;
  // The row's words end inside this block, so copy them out rather than read
  // past the end of the row.
  uint32_t scratchWords[Bits] = {};
  uint8_t scratchCodes[kBlockCodes];
  std::copy_n(packed + fullBlocks * Bits, packedWordsPerRow(tail, Bits),
              scratchWords);
  unpackBlock<Bits>(scratchWords, scratchCodes, BlockIndices());
  std::copy_n(scratchCodes, tail, out + fullBlocks * kBlockCodes);
}

} // namespace

int64_t packedWordsPerRow(int64_t cols, int bits) {
  return (cols * bits + 31) / 32;
}

void packRows(const uint8_t *codes, int64_t rows, int64_t cols, int bits,
              uint32_t *out) {
  int64_t words = packedWordsPerRow(cols, bits);
  withBits(bits, [&](auto width) {
    for (int64_t r = 0; r < rows; ++r)
      packRow<width()>(codes + r * cols, cols, out + r * words);
  });
}

void unpackRows(const uint32_t *packed, int64_t rows, int64_t cols, int bits,
                uint8_t *out) {
  int64_t words = packedWordsPerRow(cols, bits);
  withBits(bits, [&](auto width) {
    for (int64_t r = 0; r < rows; ++r)
      unpackRow<width()>(packed + r * words, cols, out + r * cols);
  });
}

} // namespace llq::quant
