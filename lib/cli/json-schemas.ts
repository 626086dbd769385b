// The one JSON line each command prints with --json, as JSON Schema (draft 2020-12; README "JSON output"
// points here). Top-level objects are closed (additionalProperties: false): a field a command adds must be
// added here, and test/cli.test.ts checks every command's real output against its schema. Nested records
// that mirror a library type (a model config, a backend's info) list the fields scripts rely on and stay
// open. `matchesSchema` checks the subset used here: type, properties, required, additionalProperties,
// items, enum, minimum.

export type JsonSchema = {
  type?: JsonType | JsonType[];
  description?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  enum?: unknown[];
  minimum?: number;
};
type JsonType = 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean' | 'null';

const integer = (minimum = 0): JsonSchema => ({ type: 'integer', minimum });
const number = (minimum?: number): JsonSchema => (minimum === undefined ? { type: 'number' } : { type: 'number', minimum });
const string: JsonSchema = { type: 'string' };
const boolean: JsonSchema = { type: 'boolean' };
const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, type: [schema.type as JsonType, 'null'] });

/** A closed object: every listed property is required unless named in `optional`. */
function object(properties: Record<string, JsonSchema>, optional: string[] = [], open = false): JsonSchema {
  return { type: 'object', properties, required: Object.keys(properties).filter((k) => !optional.includes(k)), additionalProperties: open };
}
const counts: JsonSchema = { type: 'object', additionalProperties: integer() };

const backend = object({ backend: string, description: string, kernelVariant: string, kernelVariants: { type: 'array', items: string }, ops: { type: 'array', items: string }, threads: integer(1) }, [], true);

/** `sparq prune --json` and `sparq quantize --json`. */
const compressRun = object(
  {
    out: string,
    format: { enum: ['dense', 'compressed-tensors', 'packed', 'bsr-int4'] },
    sparsity: number(0),
    bits_per_weight: nullable(number(0)),
    seconds: number(0),
    peak_rss_bytes: integer(),
    linears: integer(1),
    quantized_linears: integer(),
    perplexity_before: number(1),
    perplexity_after: number(1),
    resumed_at_block: nullable(integer(1)),
    // Structured pruning (magnitude-sp, wanda-sp, structprune): allocation clamps and, when shrunk, the sizes.
    allocation_notes: { type: 'array', items: string },
    parameters_before: integer(),
    parameters_after: integer(),
    per_layer_widths: boolean,
    layer_widths: { type: 'array', items: object({ intermediate_size: integer(1), num_attention_heads: integer(1), num_key_value_heads: integer(1) }) },
    // Methods that tune quantization scales end to end (gqsa --e2e-steps): the calibration loss before and after.
    scale_tuning: object({ steps: integer(), loss_before: number(0), loss_after: number(0), kept: boolean }),
    // A bsr-int4 output (gqsa): the safetensors bytes and the block size.
    packed_bytes: integer(),
    block_size: integer(1),
    // Model-scope methods that train (elsa): the budget and the run's end state (report.json has the per-interval log).
    training: object({ steps: integer(1), tokensSeen: integer(1), seconds: number(0), finalLoss: number(0), finalViolation: number(0) }, [], true),
  },
  ['perplexity_before', 'perplexity_after', 'allocation_notes', 'parameters_before', 'parameters_after', 'per_layer_widths', 'layer_widths', 'scale_tuning', 'packed_bytes', 'block_size', 'training'],
);

/** `sparq prune --json` with an expert-pruning method (heapr, expert-drop, activation-atoms). */
const expertPruneRun = object(
  {
    out: string,
    method: { enum: ['heapr', 'expert-drop', 'activation-atoms'] },
    ranking: { enum: ['global', 'per-layer'] },
    format: { enum: ['padded', 'shrunk'] },
    sparsity: number(0),
    routed_parameters: integer(),
    removed_parameters: integer(),
    routed_parameters_stored: integer(),
    expert_flops_per_token: object({ before: number(0), run: number(0), stored: number(0) }),
    removed_experts: { type: 'array', items: object({ layer: integer(), expert: integer() }) },
    starved_experts: { type: 'array', items: object({ layer: integer(), expert: integer(), tokens: integer() }) },
    warnings: { type: 'array', items: string },
    seconds: number(0),
    perplexity_before: number(1),
    perplexity_after: number(1),
  },
  ['perplexity_before', 'perplexity_after'],
);

export const CLI_JSON_SCHEMAS = {
  info: object({
    version: string,
    cpu: backend,
    cuda: nullable({ ...backend, type: 'object' }),
    loadAttempts: { type: 'array', items: object({ backend: string, path: string, ok: boolean, error: string, fix: string }, ['error', 'fix']) },
  }),
  inspect: object({
    dir: string,
    config: object({ architecture: string, hiddenSize: integer(1), layers: integer(1), vocabSize: integer(1) }, [], true),
    parameters: integer(),
    bytes: integer(),
    dtypes: counts,
    linears: {
      type: 'array',
      items: object(
        {
          name: string,
          shape: { type: 'array', items: integer() },
          sparsity: number(0),
          format: { enum: ['dense', 'pack-quantized', 'float-quantized'] },
          bits: integer(1),
          groupSize: nullable(integer(1)),
          symmetric: boolean,
          actOrder: { enum: ['static', 'group', null] },
        },
        ['bits', 'groupSize', 'symmetric', 'actOrder'],
      ),
    },
    /** Each layer's widths (they differ per layer after structured pruning: sparq_layer_widths). */
    layers: { type: 'array', items: object({ intermediateSize: integer(1), heads: integer(1), kvHeads: integer(1) }) },
    /** Mixture-of-experts models: each MoE layer's stored and kept expert widths. */
    experts: { type: 'array', items: object({ layer: integer(), stored: integer(), kept: { type: 'array', items: integer() } }) },
  }, ['experts']),
  eval: object({ model: string, perplexity: number(1), meanNll: number(0), windows: integer(1), tokens: integer(1), seqLen: integer(2), seconds: number(0) }),
  prune: compressRun,
  'prune (expert methods)': expertPruneRun,
  quantize: compressRun,
  train: object({ out: string, steps: integer(1), first_loss: number(0), final_loss: number(0), tokens_per_second: number(0), seconds: number(0), epochs: number(0), peak_rss_bytes: integer() }),
  export: object(
    {
      model: string,
      out: string,
      format: string,
      blockSize: integer(1),
      byFormat: { type: 'object', additionalProperties: object({ linears: integer(), bytesBefore: integer(), bytesAfter: integer() }) },
      fileBytesBefore: integer(),
      fileBytesAfter: integer(),
      seconds: number(0),
    },
    ['blockSize'],
  ),
  generate: object({
    text: string,
    tokens: { type: 'array', items: integer() },
    promptTokens: integer(1),
    generatedTokens: integer(),
    stopReason: string,
    prefillSeconds: number(0),
    decodeSeconds: number(0),
    prefillTokensPerSecond: number(0),
    decodeTokensPerSecond: number(0),
    peakRssBytes: integer(),
    model: string,
    backend: string,
    weights: { enum: ['stored', 'f32'] },
    linearFormats: counts,
  }),
  bench: object({
    schema: { enum: ['sparq.kernel-bench/1'] },
    sparqVersion: string,
    machine: object({ cpuModel: string, cores: integer(1), threads: integer(1), backend: string, kernelVariant: string, description: string }, [], true),
    copyGBs: number(0),
    copyBytes: integer(),
    options: { type: 'object' },
    rows: {
      type: 'array',
      items: object(
        {
          format: string,
          outFeatures: integer(1),
          inFeatures: integer(1),
          batch: integer(1),
          weightBytes: integer(),
          seconds: number(0),
          gflops: number(0),
          weightGBs: number(0),
          rooflineFraction: number(0),
          speedupOverDenseF32: nullable(number(0)),
          reference: nullable(string),
          speedupOverReference: nullable(number(0)),
        },
        [],
        true,
      ),
    },
  }),
  demo: object({
    sparqVersion: string,
    dataset: string,
    model: object({ dir: string, cached: boolean, trainSeconds: nullable(number(0)), finalLoss: number(0), parameters: integer(1), profile: { type: 'object' } }),
    tokenizer: object({ vocabSize: integer(1), calibrationTokens: integer(), evalTokens: integer() }),
    calibration: object({ windows: integer(1), seqLen: integer(2) }),
    eval: object({ seqLen: integer(2), tokens: integer(1) }),
    /** The pruning table; a method that trains (Elsa) gives the tokens it trained on. */
    results: { type: 'array', items: object({ method: string, pattern: string, sparsity: number(0), perplexity: number(1), seconds: number(0), trainingTokens: integer(1) }, ['trainingTokens']) },
    /** The quantization table: bits per weight as stored against perplexity, one row per method and scheme. */
    quantization: { type: 'array', items: object({ method: string, scheme: string, bitsPerWeight: number(0), perplexity: number(1), seconds: number(0) }) },
    seconds: number(0),
  }),
} satisfies Record<string, JsonSchema>;

export type CliJsonCommand = keyof typeof CLI_JSON_SCHEMAS;

function typeOf(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value as JsonType;
}

/** Every way `value` breaks `schema`, each naming its path (`$.linears[3].sparsity`); empty when it fits. */
export function matchesSchema(schema: JsonSchema, value: unknown, path = '$'): string[] {
  const problems: string[] = [];
  const actual = typeOf(value);
  if (schema.type !== undefined) {
    const allowed = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!allowed.includes(actual) && !(actual === 'integer' && allowed.includes('number'))) return [`${path}: expected ${allowed.join(' or ')}, got ${actual} ${JSON.stringify(value)}`];
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) problems.push(`${path}: expected one of ${JSON.stringify(schema.enum)}, got ${JSON.stringify(value)}`);
  if (schema.minimum !== undefined && typeof value === 'number' && !(value >= schema.minimum)) problems.push(`${path}: ${value} is below the minimum ${schema.minimum}`);
  if (actual === 'array' && schema.items) (value as unknown[]).forEach((item, i) => problems.push(...matchesSchema(schema.items!, item, `${path}[${i}]`)));
  if (actual === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of schema.required ?? []) if (!(key in record)) problems.push(`${path}: the required field '${key}' is missing`);
    for (const [key, item] of Object.entries(record)) {
      const property = schema.properties?.[key];
      if (property) problems.push(...matchesSchema(property, item, `${path}.${key}`));
      else if (schema.additionalProperties === false) problems.push(`${path}: the field '${key}' is not in the schema`);
      else if (typeof schema.additionalProperties === 'object') problems.push(...matchesSchema(schema.additionalProperties, item, `${path}.${key}`));
    }
  }
  return problems;
}
