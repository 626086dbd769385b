// Mutation fuzzing of everything sparq reads from users: safetensors headers (JSON and raw bytes),
// config.json, sharded index files and recipes. Each mutated input must end in a typed SparqError or a
// correct result; any other exception (a TypeError, a RangeError, a crash) or a case slower than its
// time budget is a finding. Shared by test/fuzz.test.ts (thousands per run) and bench/fuzz.ts (10⁵+).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  assignLinears,
  Checkpoint,
  checkParameters,
  DecoderModel,
  parseConfig,
  parseRecipe,
  SafetensorsFile,
  SparqError,
  type StoredTensor,
} from '../lib/index.js';
import { rng } from './helpers.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface FuzzFinding {
  target: string;
  input: string;
  error: string;
}

export interface FuzzResult {
  cases: number;
  typedErrors: number;
  accepted: number;
  slowestMs: number;
  findings: FuzzFinding[];
}

/** A value that a careless parser might trip over. */
function oddValue(random: () => number): Json {
  const values: Json[] = [
    null, true, false, 0, -1, 1, 2 ** 53, -(2 ** 53), 1.5, -0.5, 1e308, Number.MAX_SAFE_INTEGER + 2, '', '0', 'abc', 'F32', 'BF16', 'I64',
    [], [0], [-1, 2], [1, 2, 3], [1e20], ['a'], {}, { a: 1 }, '../x', '/etc/passwd', 'a'.repeat(300), 7, 64, 128, 4096,
  ];
  return values[Math.floor(random() * values.length)];
}

/** Applies one to three random structural mutations to a JSON value (in a copy). */
export function mutateJson(value: Json, random: () => number): Json {
  const copy = JSON.parse(JSON.stringify(value)) as Json;
  const mutations = 1 + Math.floor(random() * 3);
  for (let m = 0; m < mutations; ++m) {
    // Pick a random container and key along a random path.
    const path: (string | number)[] = [];
    let node: Json = copy;
    while (node !== null && typeof node === 'object' && random() < 0.7) {
      const keys: (string | number)[] = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
      if (keys.length === 0) break;
      const key = keys[Math.floor(random() * keys.length)];
      const child: Json = Array.isArray(node) ? node[key as number] : (node as Record<string, Json>)[key as string];
      if (child === null || typeof child !== 'object') {
        path.push(key);
        break;
      }
      path.push(key);
      node = child;
    }
    const parentPath = path.slice(0, -1);
    let parent: Json = copy;
    for (const k of parentPath) parent = (parent as Record<string, Json>)[k as string];
    const key = path[path.length - 1];
    if (parent === null || typeof parent !== 'object' || key === undefined) continue;
    const target = parent as Record<string, Json>;
    const choice = random();
    if (choice < 0.35) target[key as string] = oddValue(random);
    else if (choice < 0.55 && !Array.isArray(parent)) delete target[key as string];
    else if (choice < 0.7 && !Array.isArray(parent)) target[`x${Math.floor(random() * 1000)}`] = oddValue(random);
    else if (choice < 0.85 && typeof target[key as string] === 'number') target[key as string] = (target[key as string] as number) + Math.floor(random() * 7) - 3;
    else target[key as string] = mutateJson(target[key as string], random);
  }
  return copy;
}

/** Flips, inserts, deletes or truncates bytes. */
function mutateBytes(bytes: Buffer, random: () => number): Buffer {
  const out = Buffer.from(bytes);
  const choice = random();
  if (choice < 0.4) {
    for (let i = 0; i < 1 + Math.floor(random() * 4); ++i) out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
    return out;
  }
  if (choice < 0.6) return out.subarray(0, Math.floor(random() * out.length));
  if (choice < 0.8) {
    const at = Math.floor(random() * out.length);
    return Buffer.concat([out.subarray(0, at), Buffer.from([Math.floor(random() * 256)]), out.subarray(at)]);
  }
  const prefix = Buffer.from(out);
  prefix.writeBigUInt64LE(BigInt(Math.floor(random() * 2 ** 20)) * (random() < 0.1 ? 2n ** 40n : 1n), 0);
  return prefix;
}

/** A small valid safetensors file: header object and data. */
function smallSafetensors(): { header: Record<string, Json>; data: Buffer } {
  const header: Record<string, Json> = {
    __metadata__: { format: 'pt' },
    'a.weight': { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
    'b.bias': { dtype: 'BF16', shape: [4], data_offsets: [24, 32] },
    'c.ids': { dtype: 'I64', shape: [1, 2], data_offsets: [32, 48] },
  };
  const data = Buffer.alloc(48);
  for (let i = 0; i < 48; ++i) data[i] = (i * 37) % 251;
  return { header, data };
}

function fileOf(header: Json, data: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

interface Target {
  name: string;
  run(random: () => number, dir: string): Promise<string>;
}

/** The fuzz targets; each returns a description of its input (for findings) and throws what sparq threw. */
function targets(sharedDir: string): Target[] {
  // Configs to mutate: a dense Llama and the MoE families' (their layer selection and expert fields).
  const configFixtures = ['stories260K', 'tiny-qwen2-moe', 'tiny-qwen3-moe', 'tiny-deepseek-moe'];
  const configs = configFixtures.map((f) => JSON.parse(readFileSync(join(sharedDir, 'fixtures', f, 'config.json'), 'utf8')) as Json);
  const configTensors = new Map<string, StoredTensor[]>();
  const qwen3 = join(sharedDir, 'fixtures', 'tiny-qwen3');
  const qwen3Index = JSON.parse(readFileSync(join(qwen3, 'model.safetensors.index.json'), 'utf8')) as Json;
  const linears = Array.from({ length: 5 }, (_, b) =>
    ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((l) => ({
      name: `model.layers.${b}.${l}`,
      role: l.split('.')[1].replace('_proj', ''),
    })),
  ).flat();
  const baseRecipe: Json = {
    stages: [
      { method: 'sparsegpt', sparsity: 0.5, targets: ['*.mlp.*'], overrides: [{ match: 'model.layers.0.*', sparsity: '25%' }], options: { damp: 0.02 } },
      { method: 'wanda', sparsity: '2:4', targets: ['re:.*self_attn\\.[qkv]_proj'], ignore: ['model.layers.4.*'] },
    ],
    sequential: 'block',
    calibration: { nsamples: 8, seqLen: 64, seed: 3 },
  };
  const patternPieces = ['.', '*', '+', '?', '(', ')', '|', '[', ']', '^', '$', '\\', 'a', 'm', 'model', 'layers', '\\d', '{2}', '{1,', '(?:', '(?=', '.*', 'X'];
  return [
    {
      name: 'safetensors header (JSON)',
      async run(random, dir) {
        const { header, data } = smallSafetensors();
        const mutated = mutateJson(header, random);
        const path = join(dir, 'h.safetensors');
        writeFileSync(path, fileOf(mutated, random() < 0.2 ? data.subarray(0, Math.floor(random() * 48)) : data));
        const input = JSON.stringify(mutated);
        const file = await SafetensorsFile.open(path);
        try {
          for (const name of file.names()) await file.read(name, { dtype: random() < 0.5 ? 'f32' : undefined });
        } finally {
          await file.close();
        }
        return input;
      },
    },
    {
      name: 'safetensors file (bytes)',
      async run(random, dir) {
        const { header, data } = smallSafetensors();
        const bytes = mutateBytes(fileOf(header, data), random);
        const path = join(dir, 'b.safetensors');
        writeFileSync(path, bytes);
        const file = await SafetensorsFile.open(path);
        try {
          for (const name of file.names()) await file.read(name);
        } finally {
          await file.close();
        }
        return bytes.subarray(0, 120).toString('base64');
      },
    },
    {
      name: 'config.json',
      async run(random) {
        // Half the cases mutate stories260K's config, the others an MoE fixture's.
        const which = random() < 0.5 ? 0 : 1 + Math.floor(random() * 3);
        const fixture = configFixtures[which];
        const mutated = mutateJson(configs[which], random) as Record<string, Json>;
        const types = ['llama', 'mistral', 'qwen2', 'qwen3', 'mixtral', 'opt', 'gpt2', 'deepseek', 'qwen2_moe', 'qwen3_moe', 'deepseek_v3'];
        if (random() < 0.3) mutated.model_type = types[Math.floor(random() * types.length)];
        const input = JSON.stringify(mutated);
        if (mutated === null || typeof mutated !== 'object' || Array.isArray(mutated)) return input;
        const config = parseConfig(mutated as Record<string, unknown>, 'config.json');
        if (!configTensors.has(fixture)) {
          const checkpoint = await Checkpoint.open(join(sharedDir, 'fixtures', fixture));
          configTensors.set(fixture, await Promise.all(checkpoint.names().map((n) => checkpoint.info(n))));
          await checkpoint.close();
        }
        checkParameters(config, configTensors.get(fixture)!, fixture, 'config.json');
        return input;
      },
    },
    {
      name: 'sharded index',
      async run(random, dir) {
        const model = join(dir, 'sharded');
        mkdirSync(model, { recursive: true });
        for (const file of ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
          writeFileSync(join(model, file), readFileSync(join(qwen3, file)));
        }
        const mutated = mutateJson(qwen3Index, random);
        const text = random() < 0.1 ? JSON.stringify(mutated).slice(0, Math.floor(random() * 200)) : JSON.stringify(mutated);
        writeFileSync(join(model, 'model.safetensors.index.json'), text);
        try {
          const opened = await DecoderModel.open(model);
          await opened.close();
        } finally {
          rmSync(model, { recursive: true, force: true });
        }
        return text.slice(0, 400);
      },
    },
    {
      name: 'recipe',
      async run(random) {
        const mutated = mutateJson(baseRecipe, random) as Record<string, Json>;
        // Half the time, also put a random pattern (often not a valid regex) where patterns go.
        if (random() < 0.5 && mutated && typeof mutated === 'object' && Array.isArray(mutated.stages) && mutated.stages[0] && typeof mutated.stages[0] === 'object') {
          const pattern = Array.from({ length: 1 + Math.floor(random() * 12) }, () => patternPieces[Math.floor(random() * patternPieces.length)]).join('');
          (mutated.stages[0] as Record<string, Json>).targets = [random() < 0.6 ? `re:${pattern}` : pattern];
        }
        const input = JSON.stringify(mutated);
        const recipe = parseRecipe(mutated, 'recipe');
        assignLinears(recipe, linears);
        return input;
      },
    },
  ];
}

/**
 * Runs `casesPerTarget` mutated inputs against each target with a fixed seed. A case may take at most
 * `budgetMs` (none comes near it; a backtracking regex or an unbounded loop would).
 */
export async function fuzz(sharedDir: string, workDir: string, options: { casesPerTarget: number; seed: number; budgetMs?: number }): Promise<FuzzResult> {
  const random = rng(options.seed);
  const result: FuzzResult = { cases: 0, typedErrors: 0, accepted: 0, slowestMs: 0, findings: [] };
  for (const target of targets(sharedDir)) {
    for (let i = 0; i < options.casesPerTarget; ++i) {
      const started = performance.now();
      let input = '';
      const caseSeed = Math.floor(random() * 2 ** 32);
      try {
        input = await target.run(rng(caseSeed), workDir);
        result.accepted += 1;
      } catch (error) {
        if (error instanceof SparqError) result.typedErrors += 1;
        else result.findings.push({ target: target.name, input: `case seed ${caseSeed}`, error: String((error as Error)?.stack ?? error) });
      }
      const ms = performance.now() - started;
      result.slowestMs = Math.max(result.slowestMs, ms);
      if (ms > (options.budgetMs ?? 2000)) result.findings.push({ target: target.name, input: input || `case seed ${caseSeed}`, error: `took ${ms.toFixed(0)} ms` });
      result.cases += 1;
    }
  }
  return result;
}
