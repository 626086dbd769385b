// Recipes: what to compress, how, and with what calibration — a JSON or YAML file, or built from CLI
// flags (a one-stage recipe). A recipe has one or more stages; each linear layer is compressed by the
// first stage whose `targets` match its name and whose `ignore` does not, with that stage's last
// matching override applied. Names are module names such as model.layers.3.mlp.down_proj; patterns are
// globs (`*` any characters, `?` one) or regular expressions written `re:...`, both matching the whole
// name. Embeddings and the LM head are never linears here; MoE routers stay dense unless a target
// other than the default `*` names them.
//
//   method: sparsegpt            # magnitude | wanda | sparsegpt | alps
//   sparsity: 0.5                # or "50%", or "2:4" (keep 2 of every 4 inputs)
//   targets: ["*"]
//   ignore: ["*.o_proj"]
//   overrides: [{ match: "model.layers.0.*", sparsity: 0.3 }]
//   options: { damp: 0.01 }
//   sequential: block            # or linear
//   calibration: { nsamples: 128, seqLen: 2048, seed: 0 }
import { parse as parseYaml } from 'yaml';
import { getMethod, METHODS } from '../compress/index.js';
import type { CompressionMethod } from '../compress/method.js';
import { formatPattern, parsePattern, type SparsityPattern } from '../compress/pattern.js';
import { InvalidArgumentError, InvalidFileError } from '../errors.js';
import { readTextFile } from '../io/text.js';
import { checkInteger, describe } from '../validate.js';
import { compilePattern } from './name-pattern.js';

export { compilePattern, type NamePattern } from './name-pattern.js';

export interface RecipeOverride {
  match: string;
  sparsity?: number | string;
  options?: Record<string, unknown>;
}

export interface RecipeStage {
  method: string;
  sparsity: number | string;
  targets?: string[];
  ignore?: string[];
  overrides?: RecipeOverride[];
  options?: Record<string, unknown>;
}

export interface Recipe {
  stages: RecipeStage[];
  sequential?: 'block' | 'linear';
  calibration?: { nsamples?: number; seqLen?: number; seed?: number };
}

/** What one linear layer gets. */
export interface Assignment {
  stage: number;
  method: CompressionMethod<any>;
  pattern: SparsityPattern;
  options: unknown;
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

const STAGE_KEYS = ['method', 'sparsity', 'targets', 'ignore', 'overrides', 'options'] as const;

function parseStage(raw: unknown, where: string): RecipeStage {
  if (!isObject(raw)) throw new InvalidArgumentError(`${where}: expected an object, got ${describe(raw)}`);
  checkKeys(raw, STAGE_KEYS, where);
  if (typeof raw.method !== 'string') throw new InvalidArgumentError(`${where}.method: required (${Object.keys(METHODS).join(', ')})`);
  const method = getMethod(raw.method, `${where}.method`);
  if (raw.sparsity === undefined) throw new InvalidArgumentError(`${where}.sparsity: required (e.g. 0.5, "50%" or "2:4")`);
  parsePattern(raw.sparsity, `${where}.sparsity`);
  const options = optionsObject(raw.options, `${where}.options`);
  method.parseOptions(options ?? {}, `${where}.options`);
  let overrides: RecipeOverride[] | undefined;
  if (raw.overrides !== undefined) {
    if (!Array.isArray(raw.overrides)) throw new InvalidArgumentError(`${where}.overrides: expected a list, got ${describe(raw.overrides)}`);
    overrides = raw.overrides.map((o, i) => {
      const at = `${where}.overrides[${i}]`;
      if (!isObject(o)) throw new InvalidArgumentError(`${at}: expected an object, got ${describe(o)}`);
      checkKeys(o, ['match', 'sparsity', 'options'], at);
      if (typeof o.match !== 'string') throw new InvalidArgumentError(`${at}.match: required (a name pattern)`);
      compilePattern(o.match, `${at}.match`);
      if (o.sparsity !== undefined) parsePattern(o.sparsity, `${at}.sparsity`);
      const overrideOptions = optionsObject(o.options, `${at}.options`);
      method.parseOptions({ ...options, ...overrideOptions }, `${at}.options`);
      return { match: o.match, sparsity: o.sparsity as number | string | undefined, options: overrideOptions };
    });
  }
  return {
    method: raw.method,
    sparsity: raw.sparsity as number | string,
    targets: stringList(raw.targets, `${where}.targets`),
    ignore: stringList(raw.ignore, `${where}.ignore`),
    overrides,
    options,
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
    checkKeys(raw.calibration, ['nsamples', 'seqLen', 'seed'], `${source}.calibration`);
    const c = raw.calibration;
    calibration = {
      nsamples: c.nsamples === undefined ? undefined : checkInteger(`${source}.calibration.nsamples`, c.nsamples, 1),
      seqLen: c.seqLen === undefined ? undefined : checkInteger(`${source}.calibration.seqLen`, c.seqLen, 2),
      seed: c.seed === undefined ? undefined : checkInteger(`${source}.calibration.seed`, c.seed, 0, 2 ** 32 - 1),
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
      const target = targets.find((t) => t.re.test(name) && !(role === 'router' && t.text === '*'));
      const ignored = ignore.find((p) => p.re.test(name));
      if (target) used.add(`t:${target.text}`);
      if (ignored) used.add(`i:${ignored.text}`);
      if (!target || ignored || assignments.has(name)) continue;
      let sparsity = stage.sparsity;
      let options = stage.options ?? {};
      for (const o of overrides) {
        if (!o.re.test(name)) continue;
        if (o.sparsity !== undefined) sparsity = o.sparsity;
        if (o.options) options = { ...options, ...o.options };
      }
      assignments.set(name, { stage: s, method, pattern: parsePattern(sparsity, `${where} (${name})`), options: method.parseOptions(options, `${where}.options`) });
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
  return `${stage.method} ${formatPattern(parsePattern(stage.sparsity, 'sparsity'))}`;
}
