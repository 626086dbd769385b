// The models and the calibration/eval protocol bench:gqsa and bench:gqsa-ablation share: calibration 32
// windows of 128 tokens of the model's calibration text (seed 0), perplexity in windows of 128.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { cachedDemoModel, SHARED_MODELS } from './util.js';

export const GQSA_MODELS: Record<string, { dir: string | undefined; calib: string; eval: string; ignore?: string[] }> = {
  // stories260K's down_proj (172 inputs) does not split into groups of 16.
  stories260K: { ...SHARED_MODELS.stories260K, ignore: ['*.down_proj'] },
  'sotu-llama': SHARED_MODELS['sotu-llama'],
  demo: { dir: cachedDemoModel(join(homedir(), '.cache', 'sparq')), calib: SHARED_MODELS['sotu-llama'].calib, eval: SHARED_MODELS['sotu-llama'].eval },
};

/** The compression options of the shared protocol for model `m`, evaluated on `evalTokens`. */
export function gqsaProtocol(m: { calib: string }, evalTokens: Int32Array) {
  return { calibrationFile: m.calib, nsamples: 32, seqLen: 128, seed: 0, evalTokens, evalSeqLen: 128 };
}
