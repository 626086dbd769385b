// sparq's public API.
export { ALL_DTYPES, dtypeSize, isDType, type DType, type TypedArray } from './tensor/dtype.js';
export * from './errors.js';
export {
  backendInfo,
  defaultDevice,
  isAvailable,
  loadAttempts,
  setKernelVariant,
  setThreads,
  supportsOp,
  type Device,
  type LoadAttempt,
  type NativeInfo,
} from './tensor/native.js';
export * from './tensor/ops.js';
export * from './tensor/packed.js';
export { DeviceStorage, formatShape, shapeNumel, Tensor, TensorArena, type Shape } from './tensor/tensor.js';
export { Checkpoint, CheckpointWriter } from './io/checkpoint.js';
export { checkOutputLocation, StagingFolder } from './export/staging.js';
export { MAX_HEADER_BYTES, SafetensorsFile, SafetensorsWriter, type PlannedTensor, type TensorInfo } from './io/safetensors.js';
export type { AsyncOptions } from './tensor/call.js';
export * from './tensor/nn.js';
export * from './tensor/nn-backward.js';
export { isMoeLayer, LLAMA_FAMILY, parseConfig, readConfig, SUPPORTED_ARCHITECTURES, type Architecture, type ModelConfig, type MoeConfig, type RopeScaling } from './models/config.js';
export { blockLinearRoles, structuralGroups, type StructuralGroup } from './models/layouts.js';
export { DecoderBlock, DecoderModel, inputGroups, LAYOUTS, type Embeddings, type InputGroup, type InputObserver, type Head, type Layout, type Linear, type Norm } from './models/decoder.js';
export { generate, type GenerateOptions, type GenerateResult, type StopReason } from './generate/generate.js';
export { GenerationSession, type GenerationBlock } from './generate/session.js';
export { DenseLinear, dequantizePackQuantizedToDense, loadLinear, PackedLinear, readStoredLinear, WEIGHTS_MODES, type LinearWeight, type StoredLinear, type WeightsMode } from './generate/linear.js';
export { exportPacked, type ExportBytes, type ExportOptions, type ExportProgress, type ExportSummary } from './export/packed-folder.js';
export { int4WeightFromCt, PACKED_FOLDER_VERSION, PackedCheckpoint, packedLayerEntry, packedLayerTensors, parsePackedFormat, type PackedLayerEntry } from './io/packed-folder.js';
export { KV_CACHE_CHUNK, KvCache } from './generate/kv-cache.js';
export { argmax, sampleToken, uniformRandom, type SamplingOptions } from './generate/sampling.js';
export { IncrementalDetokenizer } from './generate/detokenizer.js';
export { evaluatePerplexity, type PerplexityOptions, type PerplexityResult } from './eval/perplexity.js';
export { loadTokenizer, loadTokenizerFile, type TextTokenizer } from './io/tokenizer.js';
export { inspectModel, type LinearReport, type ModelReport } from './models/inspect.js';
export { llamaPlan, writeRandomLlama, type RandomLlamaOptions } from './models/random-model.js';
export { getMethod, METHODS } from './compress/index.js';
export { countZeros, formatPattern, keptCount, parsePattern, patternSparsity, type SparsityPattern } from './compress/pattern.js';
export type { BlockReconstruction, BlockRefineRequest, BlockRefineResult, CompressedLinear, CompressionMethod, CompressRequest, GroupMember, GroupRequest, LinearStatistics, MethodCheckpoint, MethodScope, ModelRequest, ModelResult, ScaleTuning, StatisticsNeeds } from './compress/method.js';
export { checkGqsaLayer, chooseGroups, obsGroupSaliency, selectGroups, solveKeptGroups, sweepGroups, type GqsaOptions } from './compress/gqsa.js';
export { elsa, ELSA_DEFAULTS, estimateElsaMemory, lambdaAt, type ElsaLogEntry, type ElsaOptions } from './compress/elsa.js';
export { bitsPerWeight, describeScheme, parseQuantization, QUANTIZATION_BITS, roundToNearest, type ActOrder, type QuantizationScheme, type QuantizedWeight } from './compress/quantizer.js';
export { isStructured, prune, quantize, type LinearReportEntry, type PruneLayout, type PruneOptions, type PruneProgress, type PruneReport } from './pipeline/prune.js';
export { shrinkModel, type ShrinkOptions, type ShrinkSummary } from './export/shrink.js';
export { allocateStructured, STRUCTURES, type StructuredOptions } from './compress/structures.js';
export { blockConfig, type LayerWidths } from './models/config.js';
export { compressModel, type CompressOptions, type CompressProgress, type RunPoint } from './pipeline/compress-model.js';
export { compressTuneAndPack, tuneScales, type RunFormat, type TunedCompressOptions, type TunedCompressReport, type TuneScalesReport } from './pipeline/tune-scales.js';
export type { CompressReport } from './pipeline/report.js';
export { assignLinears, compilePattern, loadRecipe, parseRecipe, type Assignment, type NamePattern, type Recipe, type RecipeOverride, type RecipeStage } from './pipeline/recipe.js';
export { CALIBRATION_DEFAULTS, loadCalibration, readCalibrationText, sampleWindows, seededRandom, type CalibrationOptions } from './pipeline/calibration.js';
export { DenseFolder } from './export/dense-folder.js';
export { CompressedTensorsFolder } from './export/compressed-tensors-folder.js';
export { OUTPUT_FORMATS, type OutputFormat } from './export/writer.js';
export { CtCheckpoint, decodeCtStoredLinear, parseCtConfig, type CtConfig, type CtStoredLinear, type CtWeightScheme } from './io/compressed-tensors.js';
export * from './tensor/quant.js';
export { Tape, Variable, type Activation, type Routing } from './autograd/tape.js';
export {
  blockParameterNames,
  lossAndGradients,
  makeBatch,
  streamGradients,
  type Batch,
  type GradientOptions,
  type GradientResult,
  type RouterRecord,
  type ModelPart,
  type StreamGradientsOptions,
} from './autograd/decoder.js';
export { RouterBalance, type RouterDecision } from './autograd/router-balance.js';
export { clipGradients, Optimizer, OPTIMIZERS, type OptimizerKind, type OptimizerOptions } from './train/optimizer.js';
export { initialParameters } from './train/init.js';
export { checkParameters, parameterPlan, type PlannedParameter, type StoredTensor } from './models/parameters.js';
export { SAVE_DTYPES, train, type SaveDtype, type TrainOptions, type TrainReport } from './train/trainer.js';
