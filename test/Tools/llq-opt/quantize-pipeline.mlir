// REQUIRES: numpy
// RUN: rm -rf %t && mkdir -p %t/in %t/out && cp %s %t/in/model.mlir
// RUN: %python -m llq.testing weights %t/in/w.safetensors q:64x96 k:32x96 norm:96

// --quantize writes the packed weights beside the output and points the IR
// at them; archive paths are rewritten relative to the output's directory.
// RUN: llq-opt %t/in/model.mlir --quantize=rtn-w4-g32 -o %t/out/model.q.mlir --quantize-report=%t/out/report.md
// RUN: FileCheck %s --input-file=%t/out/model.q.mlir
// RUN: FileCheck %s --check-prefix=REPORT --input-file=%t/out/report.md
// RUN: %python -c "from llq import safetensors as s; t = s.load('%t/out/model.q.safetensors'); print(sorted((k, v.dtype.name, v.shape) for k, v in t.items()))" | FileCheck %s --check-prefix=ARCHIVE

// The output round-trips and its weights resolve from another directory.
// RUN: cd %t && llq-opt out/model.q.mlir -o %t/again.mlir && FileCheck %s --check-prefix=AGAIN --input-file=%t/again.mlir

// --weights-out names the archive; stdout needs it.
// RUN: llq-opt %t/in/model.mlir --quantize=rtn-w8 --weights-out=%t/w8.safetensors --quantize-report=none | FileCheck %s --check-prefix=W8
// RUN: test -f %t/w8.safetensors

// CHECK-DAG: llq.archive @packed safetensors "model.q.safetensors"
// CHECK-DAG: llq.archive @w safetensors "../in/w.safetensors"
// CHECK-LABEL: func.func @attn
// CHECK-DAG: %[[NORM:.*]] = llq.weight @w["norm"] : tensor<96xf32>
// CHECK-DAG: %[[QW:.*]] = llq.weight @packed["q.qweight"] : tensor<64x12xi32>
// CHECK-DAG: %[[QS:.*]] = llq.weight @packed["q.scales"] : tensor<64x3xf16>
// CHECK-DAG: %[[QZ:.*]] = llq.weight @packed["q.qzeros"] : tensor<64x3xi8>
// CHECK: llq.qlinear %{{.*}}, %[[QW]] scales %[[QS]] zeros %[[QZ]] {{.*}}scheme = #llq.scheme<w4, group = 32, asym>
// CHECK: llq.weight @packed["k.qweight"] : tensor<32x12xi32>
// CHECK-NOT: llq.linear
// CHECK-NOT: dense_resource

// REPORT: | layer | shape | scheme | bytes before | bytes after | bits/weight | mean abs err | max abs err | rel rms err |
// REPORT: | q | 64x96 | w4-g32 | 24576 | 3648 | 4.750 |
// REPORT: | k | 32x96 | w4-g32 | 12288 | 1824 | 4.750 |
// REPORT: | total (2 layers) | | | 36864 | 5472 | 4.750 |

// ARCHIVE: [('k.qweight', 'int32', (32, 12)), ('k.qzeros', 'int8', (32, 3)), ('k.scales', 'float16', (32, 3)), ('q.qweight', 'int32', (64, 12)), ('q.qzeros', 'int8', (64, 3)), ('q.scales', 'float16', (64, 3))]

// AGAIN-DAG: llq.archive @packed safetensors "out/model.q.safetensors"
// AGAIN-DAG: llq.archive @w safetensors "in/w.safetensors"

// W8-DAG: llq.archive @packed safetensors "{{.*}}w8.safetensors"
// W8: llq.weight @packed["q.qweight"] : tensor<64x24xi32>
// W8: scheme = #llq.scheme<w8, per_channel, asym>

llq.archive @w safetensors "w.safetensors"

func.func @attn(%x: tensor<?x?x96xf32>) -> (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<96xf32>) {
  %norm = llq.weight @w["norm"] : tensor<96xf32>
  %wq = llq.weight @w["q"] : tensor<64x96xf32>
  %wk = llq.weight @w["k"] : tensor<32x96xf32>
  %q = llq.linear %x, %wq : tensor<?x?x96xf32>, tensor<64x96xf32> -> tensor<?x?x64xf32>
  %k = llq.linear %x, %wk : tensor<?x?x96xf32>, tensor<32x96xf32> -> tensor<?x?x32xf32>
  return %q, %k, %norm : tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<96xf32>
}
