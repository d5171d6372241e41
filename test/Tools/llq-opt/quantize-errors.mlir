// REQUIRES: numpy
// RUN: rm -rf %t && mkdir -p %t && cp %s %t/model.mlir
// RUN: %python -m llq.testing weights %t/w.safetensors a:8x16 f16:8x16:f16

// An invalid spec fails before any work, naming the methods and the grammar,
// and writes nothing.
// RUN: not llq-opt %t/model.mlir --quantize=bogus -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=BOGUS
// RUN: test ! -e %t/out.mlir && test ! -e %t/out.safetensors
// BOGUS: invalid quantization spec 'bogus': unknown method 'bogus'
// BOGUS-NEXT: valid methods: rtn, gptq, awq, smoothquant
// BOGUS-NEXT: spec grammar: <method>-w<bits>[a<bits>][-g<group>][-sym][-<flag>]

// RUN: not llq-opt %t/model.mlir --quantize=rtn-w9-g128 -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=BITS
// BITS: invalid quantization spec 'rtn-w9-g128': rtn takes 1 to 8 bits, got 9
// RUN: not llq-opt %t/model.mlir --quantize=rtn-w4-g0 -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=GROUP
// GROUP: expected one 'g<group>' with a positive group size, got 'g0'
// RUN: not llq-opt %t/model.mlir --quantize=rtn-g128 -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=NOBITS
// NOBITS: missing the bit width 'w<bits>'
// RUN: not llq-opt %t/model.mlir --quantize=rtn-w1-sym -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=SYM1
// SYM1: invalid quantization spec 'rtn-w1-sym': symmetric
// RUN: not llq-opt %t/model.mlir --quantize=rtn-w4-x -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=PART
// PART: unexpected part 'x'
// RUN: not llq-opt %t/model.mlir --quantize=rtn-w4 2>&1 | FileCheck %s --check-prefix=STDOUT
// STDOUT: --quantize writing to stdout needs --weights-out=FILE
// RUN: test ! -e %t/out.mlir

// RUN: llq-opt --list-methods | FileCheck %s --check-prefix=LIST
// LIST: rtn  (w1-w8)  round-to-nearest

// A weight the archive does not have, or has with another type, is an error
// that names it; no output is left behind.
// RUN: sed 's/@w\["a"\]/@w["missing"]/' %s > %t/missing.mlir
// RUN: not llq-opt %t/missing.mlir --quantize=rtn-w4-g8 -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: error: tensor 'missing' is not in archive '{{.*}}w.safetensors'
// RUN: test ! -e %t/out.mlir && test ! -e %t/out.safetensors
// RUN: sed 's/tensor<8x16xf16>/tensor<8x16xf32>/g' %s > %t/dtype.mlir
// RUN: not llq-opt %t/dtype.mlir --quantize=rtn-w4-g8 -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=DTYPE
// DTYPE: error: tensor 'f16' in '{{.*}}w.safetensors' is F16 8, 16, but the IR declares 'tensor<8x16xf32>'
// RUN: sed 's/"w.safetensors"/"nowhere.safetensors"/' %s > %t/noarchive.mlir
// RUN: not llq-opt %t/noarchive.mlir --quantize=rtn-w4-g8 -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=NOFILE
// NOFILE: error: cannot open archive @w: {{.*}}nowhere.safetensors: cannot open: No such file or directory
// RUN: test ! -e %t/out.mlir

// A corrupt archive is a diagnostic, not a crash.
// RUN: head -c 20 %t/w.safetensors > %t/trunc.safetensors
// RUN: sed 's/"w.safetensors"/"trunc.safetensors"/' %s > %t/trunc.mlir
// RUN: not llq-opt %t/trunc.mlir --quantize=rtn-w4-g8 -o %t/out.mlir 2>&1 | FileCheck %s --check-prefix=TRUNC
// TRUNC: error: cannot open archive @w: {{.*}}trunc.safetensors:
// RUN: test ! -e %t/out.mlir

// An output directory that does not exist: an error, no temporary left.
// RUN: not llq-opt %t/model.mlir -o %t/no/such/dir/out.mlir 2>&1 | FileCheck %s --check-prefix=OUTDIR
// OUTDIR: cannot write '{{.*}}no/such/dir/out.mlir'

llq.archive @w safetensors "w.safetensors"
func.func @f(%x: tensor<1x16xf32>) -> (tensor<1x8xf32>, tensor<1x8xf32>) {
  %a = llq.weight @w["a"] : tensor<8x16xf32>
  %b = llq.weight @w["f16"] : tensor<8x16xf16>
  %y = llq.linear %x, %a : tensor<1x16xf32>, tensor<8x16xf32> -> tensor<1x8xf32>
  %z = llq.linear %x, %b : tensor<1x16xf32>, tensor<8x16xf16> -> tensor<1x8xf32>
  return %y, %z : tensor<1x8xf32>, tensor<1x8xf32>
}
