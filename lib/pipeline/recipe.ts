// Recipes: what to compress, how, and with what calibration — a JSON or YAML file, or built from CLI
// flags (a one-stage recipe). A recipe has one or more stages; each linear layer is compressed by the
// first stage whose `targets` match its name and whose `ignore` does not, with that stage's last
// matching override applied. Names are module names such as model.layers.3.mlp.down_proj; patterns are
// globs (`*` any characters, `?` one) or regular expressions written `re:...`, both matching the whole
// name. Embeddings and the LM head are never linears here; MoE routers (and Qwen2-MoE's
// shared_expert_gate) stay dense unless a target names them: a pattern other than `*` that matches the
// router and spells its own last name part (`gate`, `shared_expert_gate`), e.g. `*.mlp.gate`, so that
// `*.mlp.*` means the MLP's linears without the router.
//
//   method: sparsegpt            # magnitude | wanda | sparsegpt | alps | elsa | rtn | gptq | gwq | hwpq | gqsa | magnitude-sp | wanda-sp | structprune
//   sparsity: 0.5                # or "50%", or "2:4" (keep 2 of every 4 inputs); pruning methods need one
//   quantize: { bits: 4, groupSize: 128, symmetric: true, actOrder: static }   # optional
//   targets: ["*"]
//   ignore: ["*.o_proj"]
//   overrides: [{ match: "model.layers.0.*", sparsity: 0.3, quantize: { bits: 8 } }]
//   options: { damp: 0.01 }
//   fallback: magnitude          # for linears no calibration token reached (default: the method's own)
//   sequential: block            # or linear
//   calibration: { nsamples: 128, seqLen: 2048, seed: 0 }   # + gradientWindows: 16 (methods that need gradients)
// A stage with `quantize` whose method does not quantize rounds the method's result to the grid (RTN).
import { parse as parseYaml } from 'yaml';
import { getMethod, METHODS } from '../compress/index.js';
import { needsCalibration, type CompressionMethod } from '../compress/method.js';
import { describeScheme, parseQuantization, type QuantizationScheme } from '../compress/quantizer.js';
import { formatPattern, parsePattern, type SparsityPattern } from '../compress/pattern.js';
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import { readTextFile } from '../io/text.js';
import { checkInteger, describe } from '../validate.js';
import { compilePattern } from '../name-pattern.js';

export { compilePattern, type NamePattern } from '../name-pattern.js';

export interface RecipeOverride {
  match: string;
  sparsity?: number | string;
  quantize?: Record<string, unknown>;
  options?: Record<string, unknown>;
}

export interface RecipeStage {
  method: string;
  sparsity?: number | string;
  quantize?: Record<string, unknown>;
  targets?: string[];
  ignore?: string[];
  overrides?: RecipeOverride[];
  options?: Record<string, unknown>;
  fallback?: string;
}

export interface Recipe {
  stages: RecipeStage[];
  sequential?: 'block' | 'linear';
  calibration?: { nsamples?: number; seqLen?: number; seed?: number; gradientWindows?: number };
}

/** What one linear layer gets. */
export interface Assignment {
  stage: number;
  method: CompressionMethod<any>;
  pattern?: SparsityPattern;
  quantization?: QuantizationScheme;
  options: unknown;
  /** The data-free method for a linear no calibration token reached (methods that need calibration only). */
  fallback?: CompressionMethod<any>;
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkKeys(value: Json, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new InvalidArgumentError(`${where}: unknown key '${key}' (allowed: ${allowed.join(', ')})`);
  }
}

function stringList(value: unknown, where: string): string[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || !list.every((p) => typeof p === 'string' && p.length > 0)) {
    throw new InvalidArgumentError(`${where}: expected a list of name patterns, got ${describe(value)}`);
  }
  list.forEach((p, i) => compilePattern(p, `${where}[${i}]`));
  return list;
}

function optionsObject(value: unknown, where: string): Json | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new InvalidArgumentError(`${where}: expected an object of method options, got ${describe(value)}`);
  return value;
}

const STAGE_KEYS = ['method', 'sparsity', 'quantize', 'targets', 'ignore', 'overrides', 'options', 'fallback'] as const;

/**
 * What a stage (or an override of it) asks of its method: a sparsity where the method needs one (and
 * only where it can prune), a grid only with a Hessian method where act order is asked.
 */
function checkWork(method: CompressionMethod<any>, options: unknown, sparsity: unknown, quantize: unknown, where: string): void {
  if (sparsity === undefined && quantize === undefined) {
    throw new InvalidArgumentError(`${where}: give a sparsity (e.g. 0.5, "50%" or "2:4"), a quantize block (e.g. { bits: 4 }), or both`);
  }
  if (sparsity !== undefined && !method.prunes) throw new InvalidArgumentError(`${where}.sparsity: ${method.name} does not prune; pair the quantization with a pruning method (magnitude, wanda, sparsegpt, alps, gptq; elsa prunes only)`);
  if (sparsity === undefined && method.requiresSparsity) throw new InvalidArgumentError(`${where}.sparsity: required by ${method.name} (e.g. 0.5, "50%" or "2:4")`);
  if (quantize !== undefined) {
    const scheme = parseQuantization(quantize, `${where}.quantize`);
    if (scheme.actOrder && !(method.quantizes(options) && method.needs.hessian)) {
      throw new InvalidArgumentError(`${where}.quantize.actOrder: activation order needs a method that quantizes with the Hessian (gptq, or sparsegpt with joint quantization), not ${method.name}`);
    }
  }
}

function parseFallback(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new InvalidArgumentError(`${where}: expected a method name, got ${describe(value)}`);
  const method = getMethod(value, where);
  if (needsCalibration(method)) throw new InvalidArgumentError(`${where}: the fallback compresses linears no calibration token reached, so it must need no calibration (${value} does)`);
  return value;
}

function parseStage(raw: unknown, where: string): RecipeStage {
  if (!isObject(raw)) throw new InvalidArgumentError(`${where}: expected an object, got ${describe(raw)}`);
  checkKeys(raw, STAGE_KEYS, where);
  if (typeof raw.method !== 'string') throw new InvalidArgumentError(`${where}.method: required (${Object.keys(METHODS).join(', ')})`);
  const method = getMethod(raw.method, `${where}.method`);
  if (raw.sparsity !== undefined) parsePattern(raw.sparsity, `${where}.sparsity`);
  const options = optionsObject(raw.options, `${where}.options`);
  const parsedOptions = method.parseOptions(options ?? {}, `${where}.options`);
  checkWork(method, parsedOptions, raw.sparsity, raw.quantize, where);
  const fallback = parseFallback(raw.fallback, `${where}.fallback`);
  let overrides: RecipeOverride[] | undefined;
  if (raw.overrides !== undefined) {
    if (!Array.isArray(raw.overrides)) throw new InvalidArgumentError(`${where}.overrides: expected a list, got ${describe(raw.overrides)}`);
    overrides = raw.overrides.map((o, i) => {
      const at = `${where}.overrides[${i}]`;
      if (!isObject(o)) throw new InvalidArgumentError(`${at}: expected an object, got ${describe(o)}`);
      checkKeys(o, ['match', 'sparsity', 'quantize', 'options'], at);
      if (typeof o.match !== 'string') throw new InvalidArgumentError(`${at}.match: required (a name pattern)`);
      compilePattern(o.match, `${at}.match`);
      if (o.sparsity !== undefined) parsePattern(o.sparsity, `${at}.sparsity`);
      const overrideOptions = optionsObject(o.options, `${at}.options`);
      const merged = method.parseOptions({ ...options, ...overrideOptions }, `${at}.options`);
      const quantize = o.quantize === undefined ? raw.quantize : { ...(raw.quantize as Json | undefined), ...(o.quantize as Json) };
      checkWork(method, merged, o.sparsity ?? raw.sparsity, quantize, at);
      return { match: o.match, sparsity: o.sparsity as number | string | undefined, quantize: o.quantize as Json | undefined, options: overrideOptions };
    });
  }
  return {
    method: raw.method,
    ...(raw.sparsity !== undefined ? { sparsity: raw.sparsity as number | string } : {}),
    ...(raw.quantize !== undefined ? { quantize: raw.quantize as Json } : {}),
    targets: stringList(raw.targets, `${where}.targets`),
    ignore: stringList(raw.ignore, `${where}.ignore`),
    overrides,
    options,
    ...(fallback ? { fallback } : {}),
  };
}

/** Validates a recipe object (from JSON, YAML or code); `source` names it in errors. */
export function parseRecipe(raw: unknown, source = 'recipe'): Recipe {
  if (!isObject(raw)) throw new InvalidArgumentError(`${source}: expected an object, got ${describe(raw)}`);
  checkKeys(raw, ['stages', 'sequential', 'calibration', ...STAGE_KEYS], source);
  let stages: RecipeStage[];
  if (raw.stages !== undefined) {
    if (STAGE_KEYS.some((k) => raw[k] !== undefined)) {
      throw new InvalidArgumentError(`${source}: give either 'stages' or one stage's keys (${STAGE_KEYS.join(', ')}) at the top, not both`);
    }
    if (!Array.isArray(raw.stages) || raw.stages.length === 0) throw new InvalidArgumentError(`${source}.stages: expected a non-empty list`);
    stages = raw.stages.map((s, i) => parseStage(s, `${source}.stages[${i}]`));
  } else {
    const stage: Json = {};
    for (const k of STAGE_KEYS) if (raw[k] !== undefined) stage[k] = raw[k];
    stages = [parseStage(stage, source)];
  }
  const sequential = raw.sequential ?? 'block';
  if (sequential !== 'block' && sequential !== 'linear') {
    throw new InvalidArgumentError(`${source}.sequential: expected 'block' or 'linear', got ${describe(raw.sequential)}`);
  }
  let calibration: Recipe['calibration'];
  if (raw.calibration !== undefined) {
    if (!isObject(raw.calibration)) throw new InvalidArgumentError(`${source}.calibration: expected an object, got ${describe(raw.calibration)}`);
    checkKeys(raw.calibration, ['nsamples', 'seqLen', 'seed', 'gradientWindows'], `${source}.calibration`);
    const c = raw.calibration;
    calibration = {
      nsamples: c.nsamples === undefined ? undefined : checkInteger(`${source}.calibration.nsamples`, c.nsamples, 1),
      seqLen: c.seqLen === undefined ? undefined : checkInteger(`${source}.calibration.seqLen`, c.seqLen, 2),
      seed: c.seed === undefined ? undefined : checkInteger(`${source}.calibration.seed`, c.seed, 0, 2 ** 32 - 1),
      ...(c.gradientWindows === undefined ? {} : { gradientWindows: checkInteger(`${source}.calibration.gradientWindows`, c.gradientWindows, 1) }),
    };
  }
  return { stages, sequential, calibration };
}

/** Reads a recipe file: YAML (.yaml/.yml) or JSON (anything else). */
export async function loadRecipe(file: string): Promise<Recipe> {
  const text = await readTextFile(file);
  let raw: unknown;
  try {
    raw = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new InvalidFileError(`${file}: not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'} (${(error as Error).message})`);
  }
  return parseRecipe(raw, file);
}

export interface LinearEntry {
  /** Module name, e.g. model.layers.3.mlp.down_proj. */
  name: string;
  role: string;
}

/** Roles that route tokens rather than transform them: dense unless named (see the file comment). */
function isGate(role: string): boolean {
  return role === 'router' || role === 'shared_expert_gate';
}

function namesGate(pattern: string, name: string): boolean {
  return pattern !== '*' && pattern.includes(name.slice(name.lastIndexOf('.') + 1));
}

/**
 * Decides each linear layer's method and pattern. Every target, ignore and override pattern must match
 * at least one linear of the model (a typo is an error, not a silently dense layer).
 */
export function assignLinears(recipe: Recipe, linears: readonly LinearEntry[], source = 'recipe'): Map<string, Assignment> {
  const assignments = new Map<string, Assignment>();
  recipe.stages.forEach((stage, s) => {
    const where = recipe.stages.length > 1 ? `${source}.stages[${s}]` : source;
    const method = getMethod(stage.method);
    const targets = (stage.targets ?? ['*']).map((p, i) => ({ text: p, re: compilePattern(p, `${where}.targets[${i}]`) }));
    const ignore = (stage.ignore ?? []).map((p, i) => ({ text: p, re: compilePattern(p, `${where}.ignore[${i}]`) }));
    const overrides = (stage.overrides ?? []).map((o, i) => ({ ...o, re: compilePattern(o.match, `${where}.overrides[${i}].match`) }));
    const used = new Set<string>();
    for (const { name, role } of linears) {
      const target = targets.find((t) => t.re.test(name) && (!isGate(role) || namesGate(t.text, name)));
      const ignored = ignore.find((p) => p.re.test(name));
      if (target) used.add(`t:${target.text}`);
      if (ignored) used.add(`i:${ignored.text}`);
      if (!target || ignored || assignments.has(name)) continue;
      let sparsity = stage.sparsity;
      let quantize = stage.quantize;
      let options = stage.options ?? {};
      for (const o of overrides) {
        if (!o.re.test(name)) continue;
        if (o.sparsity !== undefined) sparsity = o.sparsity;
        if (o.quantize) quantize = { ...quantize, ...o.quantize };
        if (o.options) options = { ...options, ...o.options };
      }
      const fallbackName = stage.fallback ?? method.fallback;
      assignments.set(name, {
        stage: s,
        method,
        ...(sparsity !== undefined ? { pattern: parsePattern(sparsity, `${where} (${name})`) } : {}),
        ...(quantize !== undefined ? { quantization: parseQuantization(quantize, `${where}.quantize (${name})`) } : {}),
        options: method.parseOptions(options, `${where}.options`),
        ...(needsCalibration(method) && fallbackName ? { fallback: getMethod(fallbackName, `${where}.fallback`) } : {}),
      });
    }
    for (const t of targets) if (!used.has(`t:${t.text}`)) throw new InvalidArgumentError(`${where}.targets: '${t.text}' matches no linear layer of the model`);
    for (const p of ignore) if (!used.has(`i:${p.text}`)) throw new InvalidArgumentError(`${where}.ignore: '${p.text}' matches no linear layer of the model`);
    for (const o of overrides) {
      if (!linears.some((l) => o.re.test(l.name))) throw new InvalidArgumentError(`${where}.overrides: '${o.match}' matches no linear layer of the model`);
    }
  });
  return assignments;
}

/** A one-line description of a stage, for logs and reports. */
export function describeStage(stage: RecipeStage): string {
  const parts = [stage.method];
  if (stage.sparsity !== undefined) parts.push(formatPattern(parsePattern(stage.sparsity, 'sparsity')));
  if (stage.quantize !== undefined) parts.push(describeScheme(parseQuantization(stage.quantize, 'quantize')));
  return parts.join(' ');
}
