//===- CudaRuntimeTest.cpp - The GPU runtime without a GPU ----------------===//
//
// Part of the llq project.
//
//===----------------------------------------------------------------------===//
//
// What of the GPU runtime can be checked on any machine: the kernel manifest
// reader and its diagnostics, module selection, the packing of the kernels'
// 26 launch parameters, and that opening the driver where there is none
// fails with a clear message (these tests skip where a driver and device
// exist).
//
//===----------------------------------------------------------------------===//

#include "llq/Runtime/Cuda/KernelLibrary.h"
#include "llq/Runtime/Cuda/ModelEngine.h"
#include "llq/runtime/llq_cuda.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace llq::rt::cuda;

namespace {

const char *kGoodManifest = R"(# written by llq-compile --emit-kernels
module sm_90 kernels.sm_90.cubin
module sm_80 kernels.sm_80.cubin
module ptx kernels.ptx

kernel llq_qgemv_w4_g128_n4096_k4096_m1_s16 kind=decode bits=4 n=4096 k=4096 group=128 mtile=1 splitk=16 block=128,1,1 smem=0 accumulate=1
kernel llq_qgemv_tc_w4_g128_n4096_k4096_m16_s4 kind=decode bits=4 n=4096 k=4096 group=128 mtile=16 splitk=4 tile_n=64 block=128 accumulate=1   # trailing comment
kernel llq_qgemm_w4_g128_n4096_k4096 kind=prefill bits=4 n=4096 k=4096 group=128 tile_m=128 tile_n=128 block=256,1,1 smem=49152 accumulate=0
	kernel llq_qgemm_w2_g64_n1000_k2048	kind=prefill bits=2 n=1000 k=2048 group=64 tile_m=64 tile_n=64 block=128,2,1 smem=65536 regs=128
)";

TEST(KernelManifestTest, ParsesModulesAndKernels) {
  Expected<KernelManifest> m = KernelManifest::parse(kGoodManifest);
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_EQ(m->modules.size(), 3u);
  EXPECT_EQ(m->modules[0].arch, "sm_90");
  EXPECT_EQ(m->modules[0].file, "kernels.sm_90.cubin");
  EXPECT_EQ(m->modules[0].line, 2);
  EXPECT_EQ(m->modules[0].smVersion(), 90);
  EXPECT_TRUE(m->modules[2].isPtx());
  EXPECT_EQ(m->modules[2].smVersion(), 0);

  ASSERT_EQ(m->kernels.size(), 4u);
  const ManifestKernel &d = m->kernels[0];
  EXPECT_EQ(d.name, "llq_qgemv_w4_g128_n4096_k4096_m1_s16");
  EXPECT_EQ(d.kind, QGemmKernelKind::Decode);
  EXPECT_EQ(d.bits, 4);
  EXPECT_EQ(d.n, 4096);
  EXPECT_EQ(d.k, 4096);
  EXPECT_EQ(d.group, 128);
  EXPECT_EQ(d.groups(), 32);
  EXPECT_EQ(d.mTile, 1);
  EXPECT_EQ(d.splitK, 16);
  EXPECT_EQ(d.block, (std::array<uint32_t, 3>{128, 1, 1}));
  EXPECT_EQ(d.sharedBytes, 0u);
  EXPECT_TRUE(d.accumulate);
  EXPECT_EQ(d.line, 6);
  EXPECT_EQ(d.grid(1), (std::array<uint32_t, 3>{32, 16, 1}));
  EXPECT_TRUE(d.handles(1));
  EXPECT_FALSE(d.handles(2));
  EXPECT_FALSE(d.handles(0));

  // block=128 is 128,1,1; smem defaults to 0.
  const ManifestKernel &d16 = m->kernels[1];
  EXPECT_EQ(d16.block, (std::array<uint32_t, 3>{128, 1, 1}));
  // tile_n: 64 rows per block of 128 threads (the tensor-core kernel).
  EXPECT_EQ(d16.grid(16), (std::array<uint32_t, 3>{64, 4, 1}));
  EXPECT_EQ(d16.mTile, 16);
  EXPECT_TRUE(d16.handles(16));
  EXPECT_FALSE(d16.handles(17));

  const ManifestKernel &p = m->kernels[2];
  EXPECT_EQ(p.kind, QGemmKernelKind::Prefill);
  EXPECT_EQ(p.tileM, 128);
  EXPECT_EQ(p.tileN, 128);
  EXPECT_EQ(p.sharedBytes, 49152u);
  EXPECT_FALSE(p.accumulate);
  EXPECT_TRUE(p.handles(100000));
  EXPECT_EQ(p.grid(2048), (std::array<uint32_t, 3>{32, 16, 1}));
  EXPECT_EQ(p.grid(129), (std::array<uint32_t, 3>{32, 2, 1}));

  // Tabs as separators, a group that leaves a short last group, an unknown
  // key kept aside, accumulate defaulting to 0.
  const ManifestKernel &q = m->kernels[3];
  EXPECT_EQ(q.name, "llq_qgemm_w2_g64_n1000_k2048");
  EXPECT_EQ(q.bits, 2);
  EXPECT_EQ(q.block, (std::array<uint32_t, 3>{128, 2, 1}));
  EXPECT_FALSE(q.accumulate);
  EXPECT_EQ(q.grid(1), (std::array<uint32_t, 3>{16, 1, 1}));
  ASSERT_EQ(q.extra.size(), 1u);
  EXPECT_EQ(q.extra.at("regs"), "128");

  EXPECT_EQ(m->find("llq_qgemm_w4_g128_n4096_k4096"), &m->kernels[2]);
  EXPECT_EQ(m->find("nope"), nullptr);
}

TEST(KernelManifestTest, AcceptsCrLfAndNoTrailingNewline) {
  Expected<KernelManifest> m = KernelManifest::parse(
      "module ptx k.ptx\r\nkernel a kind=decode bits=8 n=16 k=64 group=64 "
      "mtile=4 splitk=1 block=32\r\n");
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_EQ(m->kernels.size(), 1u);
  EXPECT_EQ(m->kernels[0].block[0], 32u);
  EXPECT_FALSE(m->kernels[0].accumulate); // one split needs no atomics
}

/// The diagnostic for a manifest of a module line plus \p kernelLine (line 2).
std::string errorOf(const std::string &text) {
  Expected<KernelManifest> m = KernelManifest::parse(text, "dir/kernels.txt");
  EXPECT_FALSE(m.ok()) << "parsed: " << text;
  return m.ok() ? std::string() : m.message();
}

std::string kernelError(const std::string &kernelLine) {
  return errorOf("module ptx kernels.ptx\n" + kernelLine + "\n");
}

const std::string kDecodeKeys =
    "bits=4 n=4096 k=4096 group=128 mtile=1 splitk=16 block=128,1,1 "
    "accumulate=1";

TEST(KernelManifestTest, MalformedModuleLines) {
  EXPECT_EQ(errorOf("module sm_90\n"),
            "dir/kernels.txt:1: expected 'module <sm_NN|ptx> <file>'");
  EXPECT_EQ(errorOf("# c\n\nmodule sm_90 a.cubin extra\n"),
            "dir/kernels.txt:3: expected 'module <sm_NN|ptx> <file>'");
  EXPECT_EQ(errorOf("module cubin a.cubin\n"),
            "dir/kernels.txt:1: unknown module architecture 'cubin' "
            "(expected sm_NN, ptx or host)");
  EXPECT_EQ(errorOf("module sm_9 a.cubin\n"),
            "dir/kernels.txt:1: unknown module architecture 'sm_9' "
            "(expected sm_NN, ptx or host)");
  EXPECT_EQ(errorOf("module sm_90 ../a.cubin\n"),
            "dir/kernels.txt:1: module file '../a.cubin' must be a plain file "
            "name in the directory");
  EXPECT_EQ(errorOf("module sm_90 a.cubin\nmodule sm_90 b.cubin\n"),
            "dir/kernels.txt:2: second module for sm_90 (first on line 1)");
  EXPECT_EQ(errorOf("modules sm_90 a.cubin\n"),
            "dir/kernels.txt:1: unknown entry 'modules' (expected 'module' or "
            "'kernel')");
  EXPECT_EQ(errorOf("# nothing\n"), "dir/kernels.txt: no module line");
  EXPECT_TRUE(KernelManifest::parse("module sm_90a a.cubin\n").ok());
  EXPECT_TRUE(KernelManifest::parse("module sm_100 a.cubin\n").ok());
}

TEST(KernelManifestTest, MalformedKernelLines) {
  EXPECT_EQ(kernelError("kernel"),
            "dir/kernels.txt:2: a kernel line needs a name");
  EXPECT_EQ(kernelError("kernel 9lives kind=decode"),
            "dir/kernels.txt:2: bad kernel name '9lives'");
  EXPECT_EQ(kernelError("kernel f kind=decode " + kDecodeKeys + " stray"),
            "dir/kernels.txt:2: kernel f: expected key=value, got 'stray'");
  EXPECT_EQ(kernelError("kernel f kind=decode " + kDecodeKeys + " =1"),
            "dir/kernels.txt:2: kernel f: expected key=value, got '=1'");
  EXPECT_EQ(kernelError("kernel f kind=decode " + kDecodeKeys + " n=8"),
            "dir/kernels.txt:2: kernel f: duplicate key 'n'");
  EXPECT_EQ(kernelError("kernel f " + kDecodeKeys),
            "dir/kernels.txt:2: kernel f: missing key 'kind'");
  EXPECT_EQ(kernelError("kernel f kind=gemv " + kDecodeKeys),
            "dir/kernels.txt:2: kernel f: 'kind' must be decode, prefill, "
            "hgemv, pbllm, billm, nf4 or model, not 'gemv'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 k=4096 group=128 mtile=1 "
                        "splitk=1 block=128"),
            "dir/kernels.txt:2: kernel f: missing key 'n'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=40x96 k=4096 group=128 "
                        "mtile=1 splitk=1 block=128"),
            "dir/kernels.txt:2: kernel f: 'n' must be an integer in [1, "
            "2147483648], not '40x96'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=-1 k=4096 group=128 "
                        "mtile=1 splitk=1 block=128"),
            "dir/kernels.txt:2: kernel f: 'n' must be an integer in [1, "
            "2147483648], not '-1'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=3 n=8 k=4096 group=128 "
                        "mtile=1 splitk=1 block=128"),
            "dir/kernels.txt:2: kernel f: 'bits' must be 2, 4 or 8, not 3");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=100 group=128 "
                        "mtile=1 splitk=1 block=128"),
            "dir/kernels.txt:2: kernel f: k=100 is not a multiple of the 32 "
            "codes of a 128-bit chunk");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=8 n=8 k=64 group=8 "
                        "mtile=1 splitk=1 block=128"),
            "dir/kernels.txt:2: kernel f: group=8 is not a multiple of the 16 "
            "codes of a 128-bit chunk");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "splitk=1 block=128"),
            "dir/kernels.txt:2: kernel f: missing key 'mtile'");
  EXPECT_EQ(kernelError("kernel f kind=prefill bits=4 n=8 k=4096 group=128 "
                        "tile_m=64 block=128"),
            "dir/kernels.txt:2: kernel f: missing key 'tile_n'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "mtile=1 splitk=1"),
            "dir/kernels.txt:2: kernel f: missing key 'block'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "mtile=1 splitk=1 block=128,,1"),
            "dir/kernels.txt:2: kernel f: 'block' must be x[,y[,z]] with each "
            "in [1, 1024], not '128,,1'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "mtile=1 splitk=1 block=1,1,1,1"),
            "dir/kernels.txt:2: kernel f: 'block' must be x[,y[,z]] with each "
            "in [1, 1024], not '1,1,1,1'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "mtile=1 splitk=1 block=512,4"),
            "dir/kernels.txt:2: kernel f: 'block' '512,4' has more than 1024 "
            "threads");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "mtile=1 splitk=1 block=128 smem=lots"),
            "dir/kernels.txt:2: kernel f: 'smem' must be an integer in [0, "
            "16777216], not 'lots'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "mtile=1 splitk=1 block=128 accumulate=yes"),
            "dir/kernels.txt:2: kernel f: 'accumulate' must be an integer in "
            "[0, 1], not 'yes'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=4 n=8 k=4096 group=128 "
                        "mtile=1 splitk=4 block=128"),
            "dir/kernels.txt:2: kernel f: splitk=4 needs accumulate=1 (the "
            "splits add into y)");
  EXPECT_EQ(errorOf("module ptx k.ptx\n"
                    "kernel f kind=decode " +
                    kDecodeKeys +
                    "\n"
                    "# a comment\n"
                    "kernel f kind=decode " +
                    kDecodeKeys + "\n"),
            "dir/kernels.txt:4: kernel f is already defined on line 2");
  // Control characters are shown escaped.
  EXPECT_EQ(kernelError("kernel f kind=dec\x01ode " + kDecodeKeys),
            "dir/kernels.txt:2: kernel f: 'kind' must be decode, prefill, "
            "hgemv, pbllm, billm, nf4 or model, not 'dec\\x01ode'");
}

TEST(KernelManifestTest, ModelAndF16GemvKernels) {
  Expected<KernelManifest> m = KernelManifest::parse(
      "module host kernels.so\n"
      "kernel llq_rope kind=model op=rope grid=12,m block=32,1,1 smem=0\n"
      "kernel llq_soft kind=model op=softmax grid=9,3 block=1\n"
      "kernel llq_hgemv_n300_k64_m4_s2 kind=hgemv n=300 k=64 mtile=4 "
      "splitk=2 tile_n=128 block=128,1,1 accumulate=1\n",
      "dir/kernels.txt");
  ASSERT_TRUE(m.ok()) << m.message();
  ASSERT_EQ(m->modules.size(), 1u);
  EXPECT_TRUE(m->modules[0].isHost());
  const ManifestKernel *rope = m->find("llq_rope");
  ASSERT_NE(rope, nullptr);
  EXPECT_EQ(rope->kind, QGemmKernelKind::Model);
  EXPECT_EQ(rope->op, "rope");
  EXPECT_TRUE(rope->handles(1000));
  EXPECT_EQ(rope->grid(7), (std::array<uint32_t, 3>{12, 7, 1}));
  EXPECT_EQ(m->find("llq_soft")->grid(7), (std::array<uint32_t, 3>{9, 3, 1}));
  const ManifestKernel *g = m->find("llq_hgemv_n300_k64_m4_s2");
  EXPECT_EQ(g->kind, QGemmKernelKind::HGemv);
  EXPECT_EQ(g->grid(2), (std::array<uint32_t, 3>{3, 2, 1}));
  EXPECT_TRUE(g->handles(4));
  EXPECT_FALSE(g->handles(5));
  // A host module is never picked for a GPU.
  EXPECT_EQ(selectModule(*m, 9, 0), nullptr);

  EXPECT_EQ(kernelError("kernel f kind=model grid=1,m block=32"),
            "dir/kernels.txt:2: kernel f: missing key 'op'");
  EXPECT_EQ(kernelError("kernel f kind=model op=rope grid=0,m block=32"),
            "dir/kernels.txt:2: kernel f: 'grid' must be x,y with x, y in "
            "[1, 65535] (y may be m), not '0,m'");
  EXPECT_EQ(kernelError("kernel f kind=hgemv n=8 k=12 mtile=1 splitk=1 "
                        "tile_n=128 block=128"),
            "dir/kernels.txt:2: kernel f: k=12 is not a multiple of 8");
  EXPECT_EQ(kernelError("kernel f kind=pbllm n=8 k=48 mtile=1 splitk=1 "
                        "tile_n=128 block=128"),
            "dir/kernels.txt:2: kernel f: k=48 is not a multiple of 32");
  EXPECT_EQ(kernelError("kernel f kind=hgemv n=8 k=16 mtile=1 splitk=2 "
                        "tile_n=128 block=128"),
            "dir/kernels.txt:2: kernel f: splitk=2 needs accumulate=1 (the "
            "splits add into y)");
}

TEST(KernelManifestTest, IntegerKernelsNameTheirQuantizationNests) {
  Expected<KernelManifest> m = KernelManifest::parse(
      "module ptx k.ptx\n"
      "kernel g kind=prefill bits=8 n=64 k=256 group=256 tile_m=128 "
      "tile_n=128 act_bits=8 act_quant=q act_amax=a block=256 smem=92160\n"
      "kernel s kind=prefill bits=8 n=64 k=256 group=256 tile_m=128 "
      "tile_n=128 act_bits=6 act_quant=q6 block=256 smem=92160\n"
      "kernel d kind=decode bits=8 n=64 k=256 group=256 mtile=4 splitk=1 "
      "act_bits=8 act_quant=q act_amax=a block=128\n",
      "dir/kernels.txt");
  ASSERT_TRUE(m.ok()) << m.message();
  const ManifestKernel *g = m->find("g");
  EXPECT_EQ(g->actBits, 8);
  EXPECT_EQ(g->actQuant, "q");
  EXPECT_EQ(g->actAmax, "a");
  EXPECT_TRUE(g->extra.empty());
  EXPECT_EQ(m->find("s")->actAmax, ""); // a static step: no max nest
  EXPECT_EQ(m->find("d")->actBits, 8);
  EXPECT_EQ(m->find("d")->actQuant, "q");
  EXPECT_EQ(m->find("d")->actAmax, "a");

  EXPECT_EQ(kernelError("kernel f kind=prefill bits=8 n=64 k=256 group=256 "
                        "tile_m=128 tile_n=128 act_bits=8 block=256"),
            "dir/kernels.txt:2: kernel f: missing key 'act_quant'");
  EXPECT_EQ(kernelError("kernel f kind=decode bits=8 n=64 k=256 group=256 "
                        "mtile=4 splitk=1 act_bits=8 block=128"),
            "dir/kernels.txt:2: kernel f: missing key 'act_quant'");
  EXPECT_EQ(kernelError("kernel f kind=prefill bits=8 n=64 k=256 group=256 "
                        "tile_m=128 tile_n=128 act_bits=9 act_quant=q "
                        "block=256"),
            "dir/kernels.txt:2: kernel f: 'act_bits' must be an integer in "
            "[2, 8], not '9'");
  EXPECT_EQ(kernelError("kernel f kind=prefill bits=8 n=64 k=256 group=256 "
                        "tile_m=128 tile_n=128 act_bits=8 act_quant=9q "
                        "block=256"),
            "dir/kernels.txt:2: kernel f: bad kernel name '9q'");
}

TEST(ModelEngineTest, ModelDescriptionErrorsNameTheLine) {
  const std::string good =
      "model hidden=64 heads=4 kv_heads=2 head_dim=16 intermediate=192 "
      "vocab=300 max_context=64 prefill_rows=8 embed=e rope=r final_norm=f "
      "lm_head=lm\n"
      "kernels embed=a add_sumsq=b rmsnorm=c rope=d scores=e softmax=f "
      "values=g swiglu=h\n"
      "block 0 attn_norm=n1 mlp_norm=n2 q=q k=k v=v o=o gate=g up=u down=d\n";
  Expected<ModelDescription> d = ModelDescription::parse(good, "model.txt");
  ASSERT_TRUE(d.ok()) << d.message();
  EXPECT_EQ(d->blocks.size(), 1u);
  EXPECT_EQ(d->kernels.at("rope"), "d");
  EXPECT_EQ(d->blocks[0].down, "d");
  auto error = [](const std::string &text) {
    Expected<ModelDescription> r = ModelDescription::parse(text, "model.txt");
    return r.ok() ? std::string("parsed") : r.message();
  };
  EXPECT_EQ(error("model hidden=64\n"), "model.txt:1: missing 'heads'");
  EXPECT_EQ(error(good + "block 2 q=q\n"),
            "model.txt:4: expected 'block 1 ...'");
  EXPECT_EQ(error(good + "layer x\n"),
            "model.txt:4: unknown entry 'layer' (expected model, kernels or "
            "block)");
  EXPECT_EQ(error(good.substr(0, good.find("block"))), "model.txt: no blocks");
  std::string noSwiglu = good;
  noSwiglu.replace(noSwiglu.find(" swiglu=h"), 9, "");
  EXPECT_EQ(error(noSwiglu), "model.txt: no 'swiglu' kernel");

  Expected<std::map<std::string, LayerEntry>> layers = parseLayerTable(
      "layer lm dtype=f16 n=300 k=64 w=lm.w16 decode1=a decode4=b\n"
      "layer q bits=4 group=32 n=64 k=64 w=q.w scales=q.s biases=q.b "
      "decode1=c prefill=p\n"
      "layer pb format=pbllm n=64 k=64 signs=s salient=l offsets=o codes=c "
      "scales=b salient_scales=t decode1=d\n",
      "layers.txt");
  ASSERT_TRUE(layers.ok()) << layers.message();
  EXPECT_TRUE(layers->at("lm").f16);
  EXPECT_EQ(layers->at("lm").decode.at(4), "b");
  EXPECT_EQ(layers->at("q").groups, 2);
  EXPECT_EQ(layers->at("q").prefill, "p");
  EXPECT_EQ(layers->at("pb").format, "pbllm");
  EXPECT_EQ(layers->at("pb").parts.at("salient_scales"), "t");
  Expected<std::map<std::string, LayerEntry>> noCodes = parseLayerTable(
      "layer pb format=pbllm n=64 k=64 signs=s salient=l offsets=o "
      "scales=b salient_scales=t decode1=d\n",
      "l.txt");
  ASSERT_FALSE(noCodes.ok());
  EXPECT_EQ(noCodes.message(), "l.txt:1: layer pb: missing 'codes'");
  Expected<std::map<std::string, LayerEntry>> bad =
      parseLayerTable("layer q bits=4 n=64 k=64 w=q.w decode1=c\n", "l.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.message(), "l.txt:1: layer q: bad or missing n, k or group");
}

TEST(ModelEngineTest, LoadingWithoutAModelOrDriverFailsCleanly) {
  char dir[] = "/tmp/llq-engine-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::ofstream(std::string(dir) + "/kernels.txt")
      << "module ptx kernels.ptx\n";
  Expected<std::unique_ptr<ModelEngine>> e = ModelEngine::load(dir, "cuda");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.message().find("has no model.txt"), std::string::npos)
      << e.message();
  llq_model *model = nullptr;
  EXPECT_NE(llq_model_load(dir, "cpu", &model), 0);
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(std::string(llq_cuda_last_error()).find("model.txt"),
            std::string::npos);
  std::remove((std::string(dir) + "/kernels.txt").c_str());
  rmdir(dir);
}

TEST(KernelManifestTest, LoadNamesTheMissingFile) {
  Expected<KernelManifest> m =
      KernelManifest::load("/nonexistent-llq-kernel-dir");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.message(), "cannot read /nonexistent-llq-kernel-dir/kernels.txt");
}

TEST(KernelManifestTest, LoadReadsTheDirectory) {
  char dir[] = "/tmp/llq-manifest-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/kernels.txt";
  {
    std::ofstream out(path);
    out << "module ptx kernels.ptx\nkernel f kind=bogus\n";
  }
  Expected<KernelManifest> m = KernelManifest::load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.message(), path + ":2: kernel f: 'kind' must be decode, "
                                "prefill, hgemv, pbllm, billm, nf4 or model, not 'bogus'");
  {
    std::ofstream out(path);
    out << "module ptx kernels.ptx\n";
  }
  m = KernelManifest::load(dir);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(m->directory, dir);
  std::remove(path.c_str());
  rmdir(dir);
}

TEST(KernelLibraryTest, SelectsTheModuleForTheComputeCapability) {
  Expected<KernelManifest> m = KernelManifest::parse(kGoodManifest);
  ASSERT_TRUE(m.ok()) << m.message();
  EXPECT_EQ(selectModule(*m, 9, 0)->arch, "sm_90");
  EXPECT_EQ(selectModule(*m, 8, 0)->arch, "sm_80");
  EXPECT_EQ(selectModule(*m, 8, 6)->arch, "sm_80");
  EXPECT_EQ(selectModule(*m, 8, 9)->arch, "sm_80");
  EXPECT_EQ(selectModule(*m, 7, 5)->arch, "ptx");
  EXPECT_EQ(selectModule(*m, 10, 0)->arch, "ptx");
  EXPECT_EQ(selectModule(*m, 12, 0)->arch, "ptx");

  Expected<KernelManifest> cubins = KernelManifest::parse(
      "module sm_80 a.cubin\nmodule sm_86 b.cubin\nmodule sm_90a c.cubin\n");
  ASSERT_TRUE(cubins.ok()) << cubins.message();
  EXPECT_EQ(selectModule(*cubins, 8, 0)->arch, "sm_80");
  EXPECT_EQ(selectModule(*cubins, 8, 6)->arch, "sm_86");
  EXPECT_EQ(selectModule(*cubins, 8, 9)->arch, "sm_86");
  EXPECT_EQ(selectModule(*cubins, 9, 0)->arch, "sm_90a");
  EXPECT_EQ(selectModule(*cubins, 7, 0), nullptr);
  EXPECT_EQ(selectModule(*cubins, 10, 0), nullptr);
}

TEST(KernelLibraryTest, PacksTheTwentySixParameters) {
  Expected<KernelManifest> m = KernelManifest::parse(kGoodManifest);
  ASSERT_TRUE(m.ok()) << m.message();
  const ManifestKernel &decode = m->kernels[1]; // mtile 16, 4-bit, g128
  QGemmBuffers b{0x1000, 0x2000, 0x3000, 0x4000, 0x5000};
  QGemmParams p;
  ASSERT_TRUE(packQGemmParams(decode, b, 5, p).ok());

  // Element counts: x 5*4096 halves; w (4096/32)*4096 16-byte vectors;
  // scales and biases 32*4096 halves; y 5*4096 floats.
  const int64_t sizes[5] = {5 * 4096, 128 * 4096, 32 * 4096, 32 * 4096,
                            5 * 4096};
  const CUdeviceptr ptrs[5] = {0x1000, 0x2000, 0x3000, 0x4000, 0x5000};
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(*static_cast<CUdeviceptr *>(p.args[i * 5 + 0]), ptrs[i]);
    EXPECT_EQ(*static_cast<CUdeviceptr *>(p.args[i * 5 + 1]), ptrs[i]);
    EXPECT_EQ(*static_cast<int64_t *>(p.args[i * 5 + 2]), 0);
    EXPECT_EQ(*static_cast<int64_t *>(p.args[i * 5 + 3]), sizes[i]);
    EXPECT_EQ(*static_cast<int64_t *>(p.args[i * 5 + 4]), 1);
  }
  EXPECT_EQ(*static_cast<int32_t *>(p.args[25]), 5);
  // Every argument has its own storage of the ABI's width.
  for (int i = 0; i < 25; ++i)
    for (int j = i + 1; j < 26; ++j)
      EXPECT_GE(std::abs(static_cast<char *>(p.args[i]) -
                         static_cast<char *>(p.args[j])),
                8)
          << i << " " << j;
  static_assert(sizeof(MemRefParams) == 40, "five 8-byte fields");
  static_assert(sizeof(CUdeviceptr) == 8, "64-bit device pointers");

  const std::array<size_t, 5> bytes = qgemmBufferBytes(decode, 5);
  EXPECT_EQ(bytes[0], size_t(5 * 4096 * 2));
  EXPECT_EQ(bytes[1], size_t(4096) * 4096 / 2); // 4 bits a weight
  EXPECT_EQ(bytes[2], size_t(32 * 4096 * 2));
  EXPECT_EQ(bytes[3], size_t(32 * 4096 * 2));
  EXPECT_EQ(bytes[4], size_t(5 * 4096 * 4));

  // A short last group counts as a group: 2-bit k=2048 g64 -> 32 groups.
  const ManifestKernel &q = m->kernels[3];
  ASSERT_TRUE(packQGemmParams(q, b, 300, p).ok());
  EXPECT_EQ(*static_cast<int64_t *>(p.args[1 * 5 + 3]), (2048 / 64) * 1000);
  EXPECT_EQ(*static_cast<int64_t *>(p.args[2 * 5 + 3]), 32 * 1000);
  EXPECT_EQ(*static_cast<int32_t *>(p.args[25]), 300);
}

TEST(KernelLibraryTest, RejectsRowCountsTheKernelCannotTake) {
  Expected<KernelManifest> m = KernelManifest::parse(kGoodManifest);
  ASSERT_TRUE(m.ok()) << m.message();
  QGemmBuffers b;
  QGemmParams p;
  Status s = packQGemmParams(m->kernels[1], b, 17, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "kernel llq_qgemv_tc_w4_g128_n4096_k4096_m16_s4 does "
                         "not handle m=17 (decode kernel, mtile=16)");
  s = packQGemmParams(m->kernels[2], b, 0, p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "kernel llq_qgemm_w4_g128_n4096_k4096 does not handle m=0");
  EXPECT_FALSE(packQGemmParams(m->kernels[2], b, int64_t(1) << 32, p).ok());
}

TEST(CudaDriverTest, MissingLibraryIsAClearError) {
  Expected<std::shared_ptr<CudaDriver>> d =
      CudaDriver::open("libllq-no-such-driver.so.1");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.message().rfind("no CUDA driver: libllq-no-such-driver.so.1 not "
                              "found (",
                              0),
            0u)
      << d.message();
  EXPECT_EQ(d.message().back(), ')');
}

TEST(CudaDriverTest, OpeningWithoutADriverOrDeviceFailsCleanly) {
  Expected<std::shared_ptr<CudaDriver>> d = CudaDriver::open();
  if (d.ok()) {
    // A driver and a device: what the tests here check does not apply.
    Expected<std::unique_ptr<CudaDevice>> dev = CudaDevice::open(*d, 0);
    ASSERT_TRUE(dev.ok()) << dev.message();
    EXPECT_FALSE((*dev)->name().empty());
    GTEST_SKIP() << "a CUDA device is present: " << (*dev)->name();
  }
  const std::string &msg = d.message();
  const bool noDriver =
      msg.rfind("no CUDA driver: libcuda.so.1 not found (", 0) == 0;
  const bool noDevice = msg.rfind("no CUDA device: ", 0) == 0;
  EXPECT_TRUE(noDriver || noDevice) << msg;
}

TEST(CudaDriverTest, CApiReportsTheMissingDriver) {
  llq_cuda_device *device = reinterpret_cast<llq_cuda_device *>(0x1);
  if (llq_cuda_open(0, &device) == 0) {
    EXPECT_NE(llq_cuda_device_name(device)[0], '\0');
    llq_cuda_close(device);
    GTEST_SKIP() << "a CUDA device is present";
  }
  EXPECT_EQ(device, nullptr);
  const std::string msg = llq_cuda_last_error();
  EXPECT_TRUE(msg.rfind("no CUDA driver: libcuda.so.1 not found (", 0) == 0 ||
              msg.rfind("no CUDA device: ", 0) == 0)
      << msg;
  EXPECT_EQ(llq_cuda_open(0, nullptr), -1);
  EXPECT_STREQ(llq_cuda_last_error(), "llq_cuda_open: null output pointer");
}

TEST(CudaDriverTest, ErrorsNameTheCall) {
  // Without a driver the error tables are absent: codes print as numbers.
  DriverApi none;
  EXPECT_EQ(describeCudaError(none, 700), "CUDA error 700");
}

} // namespace
