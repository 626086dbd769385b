// One Job per op: argument order, checks, and the call into the backend. No math here.
#include "ops.h"

#include "core/ops.h"
#include "worker.h"

namespace sparq::napi {

namespace {

struct GemmJob {
  static constexpr const char* kName = "gemm";
  TensorView a, b, c;
  bool transA = false, transB = false;
  double alpha = 1, beta = 0;
  void parse(ArgReader& r) {
    a = r.tensor("a");
    transA = r.boolean("transA");
    b = r.tensor("b");
    transB = r.boolean("transB");
    c = r.tensor("c");
    alpha = r.number("alpha");
    beta = r.number("beta");
    checkGemm(a, transA, b, transB, c);
  }
  void run(Backend& backend) { backend.gemm(a, transA, b, transB, c, alpha, beta); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct SyrkJob {
  static constexpr const char* kName = "syrk";
  TensorView x, c;
  double alpha = 1, beta = 0;
  bool fillUpper = true;
  void parse(ArgReader& r) {
    x = r.tensor("x");
    c = r.tensor("c");
    alpha = r.number("alpha");
    beta = r.number("beta");
    fillUpper = r.boolean("fillUpper");
    checkSyrk(x, c);
  }
  void run(Backend& backend) { backend.syrk(x, c, alpha, beta, fillUpper); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct CholeskyJob {
  static constexpr const char* kName = "cholesky";
  TensorView a, out;
  CholeskyOptions options;
  CholeskyReport report;
  void parse(ArgReader& r) {
    a = r.tensor("a");
    out = r.tensor("out");
    options.upper = r.boolean("upper");
    options.inverse = r.boolean("inverse");
    options.damp = r.number("damp");
    options.maxAttempts = static_cast<int>(r.integer("maxAttempts"));
    checkCholesky(a, out, options);
  }
  void run(Backend& backend) { report = backend.cholesky(a, out, options); }
  Napi::Value result(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("relativeDamping", report.relativeDamping);
    o.Set("absoluteDamping", report.absoluteDamping);
    o.Set("attempts", report.attempts);
    return o;
  }
};

struct TrsmJob {
  static constexpr const char* kName = "trsm";
  TensorView t, b;
  bool lower = true, transT = false, left = true, unitDiagonal = false;
  double alpha = 1;
  void parse(ArgReader& r) {
    t = r.tensor("t");
    b = r.tensor("b");
    lower = r.boolean("lower");
    transT = r.boolean("transT");
    left = r.boolean("left");
    unitDiagonal = r.boolean("unitDiagonal");
    alpha = r.number("alpha");
    checkTrsm(t, b, left);
  }
  void run(Backend& backend) { backend.trsm(t, b, lower, transT, left, unitDiagonal, alpha); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct ConvertJob {
  static constexpr const char* kName = "convert";
  TensorView src, dst;
  void parse(ArgReader& r) {
    src = r.tensor("src");
    dst = r.tensor("dst");
    checkConvert(src, dst);
  }
  void run(Backend& backend) { backend.convert(src, dst); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct TopkMaskJob {
  static constexpr const char* kName = "topkMask";
  TensorView scores, mask;
  int64_t k = 0;
  bool largest = true;
  void parse(ArgReader& r) {
    scores = r.tensor("scores");
    k = r.integer("k");
    largest = r.boolean("largest");
    mask = r.tensor("mask");
    checkTopkMask(scores, k, mask);
  }
  void run(Backend& backend) { backend.topkMask(scores, k, largest, mask); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct EighJob {
  static constexpr const char* kName = "eigh";
  TensorView a, values, vectors;
  void parse(ArgReader& r) {
    a = r.tensor("a");
    values = r.tensor("values");
    vectors = r.tensor("vectors");
    checkEigh(a, values, vectors);
  }
  void run(Backend& backend) { backend.eigh(a, values, vectors); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct MaskedCgJob {
  static constexpr const char* kName = "maskedCg";
  TensorView h, g, mask, x;
  MaskedCgOptions options;
  MaskedCgReport report;
  void parse(ArgReader& r) {
    h = r.tensor("h");
    g = r.tensor("g");
    mask = r.tensor("mask");
    x = r.tensor("x");
    options.maxIterations = static_cast<int>(r.integer("maxIterations"));
    options.rtol = r.number("rtol");
    checkMaskedCg(h, g, mask, x, options);
  }
  void run(Backend& backend) { report = backend.maskedCg(h, g, mask, x, options); }
  Napi::Value result(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("iterations", report.iterations);
    o.Set("converged", report.converged);
    return o;
  }
};

struct ScaleColumnsJob {
  static constexpr const char* kName = "scaleColumns";
  TensorView x, scale, out;
  void parse(ArgReader& r) {
    x = r.tensor("x");
    scale = r.tensor("scale");
    out = r.tensor("out");
    checkScaleColumns(x, scale, out);
  }
  void run(Backend& backend) { backend.scaleColumns(x, scale, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct DotJob {
  static constexpr const char* kName = "dot";
  TensorView a, b;
  double value = 0;
  void parse(ArgReader& r) {
    a = r.tensor("a");
    b = r.tensor("b");
    checkDot(a, b);
  }
  void run(Backend& backend) { value = backend.dot(a, b); }
  Napi::Value result(Napi::Env env) { return Napi::Number::New(env, value); }
};

// A quantization grid: bits, group size, symmetric flag, the scales' storage dtype.
QuantGrid readGrid(ArgReader& r) {
  QuantGrid grid;
  grid.bits = static_cast<int>(r.integer("bits"));
  grid.groupSize = r.integer("groupSize");
  grid.symmetric = r.boolean("symmetric");
  const int64_t code = r.integer("scaleDType");
  SPARQ_CHECK(isValidDType(static_cast<int32_t>(code)), ErrorCode::InvalidArgument, "scaleDType: unknown dtype code " + std::to_string(code));
  grid.scaleDType = static_cast<DType>(code);
  return grid;
}

struct ColumnSweepJob {
  static constexpr const char* kName = "columnSweep";
  TensorView w, hinvUpper;
  SweepOptions options;
  void parse(ArgReader& r) {
    w = r.tensor("w");
    hinvUpper = r.tensor("hinvUpper");
    options.sparsity = r.number("sparsity");
    options.n = static_cast<int>(r.integer("n"));
    options.m = static_cast<int>(r.integer("m"));
    options.blockSize = static_cast<int>(r.integer("blockSize"));
    options.grid = readGrid(r);
    options.fitAtGroupStart = r.boolean("fitAtGroupStart");
    options.groupOf = r.tensor("groupOf");
    options.scales = r.tensor("scales");
    options.zeros = r.tensor("zeros");
    options.codes = r.tensor("codes");
    checkColumnSweep(w, hinvUpper, options);
  }
  void run(Backend& backend) { backend.columnSweep(w, hinvUpper, options); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct QuantizeRtnJob {
  static constexpr const char* kName = "quantizeRtn";
  TensorView w, groupOf, codes, scales, zeros, out;
  QuantGrid grid;
  void parse(ArgReader& r) {
    w = r.tensor("w");
    grid = readGrid(r);
    groupOf = r.tensor("groupOf");
    codes = r.tensor("codes");
    scales = r.tensor("scales");
    zeros = r.tensor("zeros");
    out = r.tensor("out");
    checkQuantizeRtn(w, grid, groupOf, codes, scales, zeros, out);
  }
  void run(Backend& backend) { backend.quantizeRtn(w, grid, groupOf, codes, scales, zeros, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct PackCodesJob {
  static constexpr const char* kName = "packCodes";
  TensorView codes, packed;
  int bits = 4;
  void parse(ArgReader& r) {
    codes = r.tensor("codes");
    bits = static_cast<int>(r.integer("bits"));
    packed = r.tensor("packed");
    checkPacking(codes, bits, packed, "packCodes");
  }
  void run(Backend& backend) { backend.packCodes(codes, bits, packed); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct UnpackCodesJob {
  static constexpr const char* kName = "unpackCodes";
  TensorView packed, codes;
  int bits = 4;
  void parse(ArgReader& r) {
    packed = r.tensor("packed");
    bits = static_cast<int>(r.integer("bits"));
    codes = r.tensor("codes");
    checkPacking(codes, bits, packed, "unpackCodes");
  }
  void run(Backend& backend) { backend.unpackCodes(packed, bits, codes); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct DequantizePackedJob {
  static constexpr const char* kName = "dequantizePacked";
  TensorView packed, scales, zeros, groupOf, out;
  int bits = 4;
  int64_t groupSize = 128;
  void parse(ArgReader& r) {
    packed = r.tensor("packed");
    bits = static_cast<int>(r.integer("bits"));
    scales = r.tensor("scales");
    zeros = r.tensor("zeros");
    groupOf = r.tensor("groupOf");
    groupSize = r.integer("groupSize");
    out = r.tensor("out");
    checkDequantizePacked(packed, bits, scales, zeros, groupOf, groupSize, out);
  }
  void run(Backend& backend) { backend.dequantizePacked(packed, bits, scales, zeros, groupOf, groupSize, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct NmMaskJob {
  static constexpr const char* kName = "nmMask";
  TensorView scores, mask;
  int n = 2, m = 4;
  bool largest = true;
  void parse(ArgReader& r) {
    scores = r.tensor("scores");
    n = static_cast<int>(r.integer("n"));
    m = static_cast<int>(r.integer("m"));
    largest = r.boolean("largest");
    mask = r.tensor("mask");
    checkNmMask(scores, n, m, mask);
  }
  void run(Backend& backend) { backend.nmMask(scores, n, m, largest, mask); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct ThresholdMaskJob {
  static constexpr const char* kName = "thresholdMask";
  TensorView scores, mask;
  double threshold = 0;
  void parse(ArgReader& r) {
    scores = r.tensor("scores");
    threshold = r.number("threshold");
    mask = r.tensor("mask");
    checkThresholdMask(scores, mask);
  }
  void run(Backend& backend) { backend.thresholdMask(scores, threshold, mask); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct ApplyMaskJob {
  static constexpr const char* kName = "applyMask";
  TensorView x, mask, out;
  void parse(ArgReader& r) {
    x = r.tensor("x");
    mask = r.tensor("mask");
    out = r.tensor("out");
    checkApplyMask(x, mask, out);
  }
  void run(Backend& backend) { backend.applyMask(x, mask, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct AxpyJob {
  static constexpr const char* kName = "axpy";
  TensorView x, y;
  double alpha = 1;
  void parse(ArgReader& r) {
    alpha = r.number("alpha");
    x = r.tensor("x");
    y = r.tensor("y");
    checkAxpy(x, y);
  }
  void run(Backend& backend) { backend.axpy(alpha, x, y); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct UnaryJob {
  static constexpr const char* kName = "unary";
  UnaryOp op = UnaryOp::Copy;
  TensorView x, out;
  double a = 0, b = 0;
  void parse(ArgReader& r) {
    op = static_cast<UnaryOp>(r.integer("op"));
    x = r.tensor("x");
    out = r.tensor("out");
    a = r.number("a");
    b = r.number("b");
    checkUnary(op, x, out);
  }
  void run(Backend& backend) { backend.unary(op, x, out, a, b); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct EmbeddingJob {
  static constexpr const char* kName = "embedding";
  TensorView table, ids, out;
  void parse(ArgReader& r) {
    table = r.tensor("table");
    ids = r.tensor("ids");
    out = r.tensor("out");
    checkEmbedding(table, ids, out);
  }
  void run(Backend& backend) { backend.embedding(table, ids, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct NormJob {
  static constexpr const char* kName = "norm";
  NormKind kind = NormKind::Rms;
  TensorView x, weight, bias, out;
  double eps = 1e-5;
  void parse(ArgReader& r) {
    kind = static_cast<NormKind>(r.integer("kind"));
    x = r.tensor("x");
    weight = r.tensor("weight");
    bias = r.tensor("bias");
    eps = r.number("eps");
    out = r.tensor("out");
    checkNorm(kind, x, weight, bias, out, eps);
  }
  void run(Backend& backend) { backend.norm(kind, x, weight, bias, eps, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct RopeJob {
  static constexpr const char* kName = "rope";
  TensorView x, positions, invFreq;
  void parse(ArgReader& r) {
    x = r.tensor("x");
    positions = r.tensor("positions");
    invFreq = r.tensor("invFreq");
    checkRope(x, positions, invFreq);
  }
  void run(Backend& backend) { backend.rope(x, positions, invFreq); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct AttentionJob {
  static constexpr const char* kName = "attention";
  TensorView q, k, v, out;
  double scale = 1;
  bool causal = true;
  void parse(ArgReader& r) {
    q = r.tensor("q");
    k = r.tensor("k");
    v = r.tensor("v");
    out = r.tensor("out");
    scale = r.number("scale");
    causal = r.boolean("causal");
    checkAttention(q, k, v, out);
  }
  void run(Backend& backend) { backend.attention(q, k, v, out, scale, causal); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct SiluMulJob {
  static constexpr const char* kName = "siluMul";
  TensorView gate, up, out;
  void parse(ArgReader& r) {
    gate = r.tensor("gate");
    up = r.tensor("up");
    out = r.tensor("out");
    checkSiluMul(gate, up, out);
  }
  void run(Backend& backend) { backend.siluMul(gate, up, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct AddBiasJob {
  static constexpr const char* kName = "addBias";
  TensorView x, bias;
  void parse(ArgReader& r) {
    x = r.tensor("x");
    bias = r.tensor("bias");
    checkAddBias(x, bias);
  }
  void run(Backend& backend) { backend.addBias(x, bias); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct CrossEntropyJob {
  static constexpr const char* kName = "crossEntropy";
  TensorView logits, targets, nll;
  void parse(ArgReader& r) {
    logits = r.tensor("logits");
    targets = r.tensor("targets");
    nll = r.tensor("nll");
    checkCrossEntropy(logits, targets, nll);
  }
  void run(Backend& backend) { backend.crossEntropy(logits, targets, nll); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct ScatterAddJob {
  static constexpr const char* kName = "scatterAdd";
  TensorView out, rows, indices, weights;
  void parse(ArgReader& r) {
    out = r.tensor("out");
    rows = r.tensor("rows");
    indices = r.tensor("indices");
    weights = r.tensor("weights");
    checkScatterAdd(out, rows, indices, weights);
  }
  void run(Backend& backend) { backend.scatterAdd(out, rows, indices, weights); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct EmbeddingBackwardJob {
  static constexpr const char* kName = "embeddingBackward";
  TensorView gradOut, ids, gradTable;
  void parse(ArgReader& r) {
    gradOut = r.tensor("gradOut");
    ids = r.tensor("ids");
    gradTable = r.tensor("gradTable");
    checkEmbeddingBackward(gradOut, ids, gradTable);
  }
  void run(Backend& backend) { backend.embeddingBackward(gradOut, ids, gradTable); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct NormBackwardJob {
  static constexpr const char* kName = "normBackward";
  NormKind kind = NormKind::Rms;
  TensorView x, weight, gradOut, gradX, gradWeight, gradBias;
  double eps = 1e-5;
  void parse(ArgReader& r) {
    kind = static_cast<NormKind>(r.integer("kind"));
    x = r.tensor("x");
    weight = r.tensor("weight");
    gradOut = r.tensor("gradOut");
    eps = r.number("eps");
    gradX = r.tensor("out");
    gradWeight = r.tensor("gradWeight");
    gradBias = r.tensor("gradBias");
    checkNormBackward(kind, x, weight, gradOut, eps, gradX, gradWeight, gradBias);
  }
  void run(Backend& backend) { backend.normBackward(kind, x, weight, gradOut, eps, gradX, gradWeight, gradBias); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct RopeBackwardJob {
  static constexpr const char* kName = "ropeBackward";
  TensorView grad, positions, invFreq;
  void parse(ArgReader& r) {
    grad = r.tensor("grad");
    positions = r.tensor("positions");
    invFreq = r.tensor("invFreq");
    checkRopeBackward(grad, positions, invFreq);
  }
  void run(Backend& backend) { backend.ropeBackward(grad, positions, invFreq); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct AttentionBackwardJob {
  static constexpr const char* kName = "attentionBackward";
  TensorView q, k, v, out, gradOut, gradQ, gradK, gradV;
  double scale = 1;
  bool causal = true;
  void parse(ArgReader& r) {
    q = r.tensor("q");
    k = r.tensor("k");
    v = r.tensor("v");
    out = r.tensor("out");
    gradOut = r.tensor("gradOut");
    gradQ = r.tensor("outQ");
    gradK = r.tensor("outK");
    gradV = r.tensor("outV");
    scale = r.number("scale");
    causal = r.boolean("causal");
    checkAttentionBackward(q, k, v, out, gradOut, gradQ, gradK, gradV, scale);
  }
  void run(Backend& backend) { backend.attentionBackward(q, k, v, out, gradOut, gradQ, gradK, gradV, scale, causal); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct SiluMulBackwardJob {
  static constexpr const char* kName = "siluMulBackward";
  TensorView gate, up, gradOut, gradGate, gradUp;
  void parse(ArgReader& r) {
    gate = r.tensor("gate");
    up = r.tensor("up");
    gradOut = r.tensor("gradOut");
    gradGate = r.tensor("outGate");
    gradUp = r.tensor("outUp");
    checkSiluMulBackward(gate, up, gradOut, gradGate, gradUp);
  }
  void run(Backend& backend) { backend.siluMulBackward(gate, up, gradOut, gradGate, gradUp); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct ActivationBackwardJob {
  static constexpr const char* kName = "activationBackward";
  UnaryOp op = UnaryOp::Relu;
  TensorView x, gradOut, out;
  void parse(ArgReader& r) {
    op = static_cast<UnaryOp>(r.integer("op"));
    x = r.tensor("x");
    gradOut = r.tensor("gradOut");
    out = r.tensor("out");
    checkActivationBackward(op, x, gradOut, out);
  }
  void run(Backend& backend) { backend.activationBackward(op, x, gradOut, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct ColumnSumsJob {
  static constexpr const char* kName = "columnSums";
  TensorView x, out;
  void parse(ArgReader& r) {
    x = r.tensor("x");
    out = r.tensor("out");
    checkColumnSums(x, out);
  }
  void run(Backend& backend) { backend.columnSums(x, out); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct CrossEntropyBackwardJob {
  static constexpr const char* kName = "crossEntropyBackward";
  TensorView logits, targets, gradNll, gradLogits;
  void parse(ArgReader& r) {
    logits = r.tensor("logits");
    targets = r.tensor("targets");
    gradNll = r.tensor("gradNll");
    gradLogits = r.tensor("out");
    checkCrossEntropyBackward(logits, targets, gradNll, gradLogits);
  }
  void run(Backend& backend) { backend.crossEntropyBackward(logits, targets, gradNll, gradLogits); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct ScatterAddBackwardJob {
  static constexpr const char* kName = "scatterAddBackward";
  TensorView gradOut, rows, indices, weights, gradRows, gradWeights;
  void parse(ArgReader& r) {
    gradOut = r.tensor("gradOut");
    rows = r.tensor("rows");
    indices = r.tensor("indices");
    weights = r.tensor("weights");
    gradRows = r.tensor("outRows");
    gradWeights = r.tensor("outWeights");
    checkScatterAddBackward(gradOut, rows, indices, weights, gradRows, gradWeights);
  }
  void run(Backend& backend) { backend.scatterAddBackward(gradOut, rows, indices, weights, gradRows, gradWeights); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

struct AdamwStepJob {
  static constexpr const char* kName = "adamwStep";
  TensorView param, grad, m, v;
  AdamwOptions options;
  void parse(ArgReader& r) {
    param = r.tensor("param");
    grad = r.tensor("grad");
    m = r.tensor("m");
    v = r.tensor("v");
    options.lr = r.number("lr");
    options.beta1 = r.number("beta1");
    options.beta2 = r.number("beta2");
    options.eps = r.number("eps");
    options.weightDecay = r.number("weightDecay");
    options.step = r.integer("step");
    checkAdamwStep(param, grad, m, v, options);
  }
  void run(Backend& backend) { backend.adamwStep(param, grad, m, v, options); }
  Napi::Value result(Napi::Env env) { return env.Undefined(); }
};

}  // namespace

void exportOps(Napi::Env env, Napi::Object exports) {
  exportJob<GemmJob>(env, exports);
  exportJob<SyrkJob>(env, exports);
  exportJob<CholeskyJob>(env, exports);
  exportJob<TrsmJob>(env, exports);
  exportJob<ConvertJob>(env, exports);
  exportJob<TopkMaskJob>(env, exports);
  exportJob<NmMaskJob>(env, exports);
  exportJob<DotJob>(env, exports);
  exportJob<ScaleColumnsJob>(env, exports);
  exportJob<EighJob>(env, exports);
  exportJob<MaskedCgJob>(env, exports);
  exportJob<ColumnSweepJob>(env, exports);
  exportJob<QuantizeRtnJob>(env, exports);
  exportJob<PackCodesJob>(env, exports);
  exportJob<UnpackCodesJob>(env, exports);
  exportJob<DequantizePackedJob>(env, exports);
  exportJob<ThresholdMaskJob>(env, exports);
  exportJob<ApplyMaskJob>(env, exports);
  exportJob<AxpyJob>(env, exports);
  exportJob<UnaryJob>(env, exports);
  exportJob<EmbeddingJob>(env, exports);
  exportJob<NormJob>(env, exports);
  exportJob<RopeJob>(env, exports);
  exportJob<AttentionJob>(env, exports);
  exportJob<SiluMulJob>(env, exports);
  exportJob<AddBiasJob>(env, exports);
  exportJob<CrossEntropyJob>(env, exports);
  exportJob<ScatterAddJob>(env, exports);
  exportJob<EmbeddingBackwardJob>(env, exports);
  exportJob<NormBackwardJob>(env, exports);
  exportJob<RopeBackwardJob>(env, exports);
  exportJob<AttentionBackwardJob>(env, exports);
  exportJob<SiluMulBackwardJob>(env, exports);
  exportJob<ActivationBackwardJob>(env, exports);
  exportJob<ColumnSumsJob>(env, exports);
  exportJob<CrossEntropyBackwardJob>(env, exports);
  exportJob<ScatterAddBackwardJob>(env, exports);
  exportJob<AdamwStepJob>(env, exports);
}

}  // namespace sparq::napi
