//===- LLQDialect.td - The llq quantization dialect --------*- tablegen -*-===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//

#ifndef LLQ_DIALECT_LLQ_IR_LLQDIALECT_TD
#define LLQ_DIALECT_LLQ_IR_LLQDIALECT_TD

include "mlir/IR/OpBase.td"

def LLQ_Dialect : Dialect {
  let name = "llq";
  let cppNamespace = "::llq";
  let summary = "Low-bit quantization of LLaMA-family models";
  let description = [{
    The llq dialect carries what is specific to weight quantization: where a
    weight lives (an archive and a tensor name, never the data itself), float
    and quantized linear layers, the quantization scheme of a layer, and the
    observers that calibration inserts. Everything else is left to upstream
    dialects.
  }];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
  }];
}

class LLQ_Op<string mnemonic, list<Trait> traits = []>
    : Op<LLQ_Dialect, mnemonic, traits>;

#endif // LLQ_DIALECT_LLQ_IR_LLQDIALECT_TD
