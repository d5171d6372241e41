//===- Packing.h - Bit packing of quantized codes ---------------*- C++ -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// The "row-major bitstream" layout, used for every code width b in 1..8.
// Each row's codes form a little-endian bitstream: code j occupies stream bits
// [j*b, (j+1)*b), and stream bit i is bit (i % 32) of 32-bit word i / 32 of
// that row. Each row is padded with zero bits to a whole number of words and
// rows are consecutive, so a kernel can address any row without the others.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_QUANT_PACKING_H
#define LLQ_QUANT_PACKING_H

#include <cstdint>

namespace llq::quant {

/// Returns the 32-bit words one packed row of \p cols codes of width \p bits
/// occupies, ceil(cols * bits / 32).
int64_t packedWordsPerRow(int64_t cols, int bits);

/// Packs the row-major \p rows x \p cols codes into
/// rows * packedWordsPerRow(cols, bits) words at \p out. Only the low \p bits
/// bits of each code are stored; \p bits must be in 1..8.
void packRows(const uint8_t *codes, int64_t rows, int64_t cols, int bits,
              uint32_t *out);

/// Inverse of packRows: writes the rows * cols codes held in \p packed to
/// \p out, row-major.
void unpackRows(const uint32_t *packed, int64_t rows, int64_t cols, int bits,
                uint8_t *out);

} // namespace llq::quant

#endif // LLQ_QUANT_PACKING_H
