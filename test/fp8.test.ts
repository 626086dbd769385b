// The FP8 E4M3 codec (lib/tensor/fp8.ts) against the OCP E4M3FN definition, computed here from the bit
// fields through f32 bit patterns (not the codec's formula), and against torch's float8_e4m3fn cast where
// a Python with torch ≥ 2.1 is at hand (skipped, saying why, elsewhere).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeE4M3, decodeE4M3Array, E4M3_VALUES, encodeE4M3, encodeE4M3Array } from '../lib/tensor/fp8.js';
import { float8Python, rng } from './helpers.js';

/** The OCP E4M3FN value of a code, built as an f32 bit pattern: normals 2^(e−7)·1.m, subnormals m·2⁻⁹, S.1111.111 NaN. */
function specValue(code: number): number {
  const sign = code >> 7;
  const exponent = (code >> 3) & 0xf;
  const mantissa = code & 7;
  if (exponent === 0xf && mantissa === 7) return NaN;
  const word = new Uint32Array(1);
  const f = new Float32Array(word.buffer);
  if (exponent === 0) {
    // m·2⁻⁹ with m ∈ 1..7 is an f32 normal: its leading bit sets the exponent, the rest the fraction.
    if (mantissa === 0) return sign ? -0 : 0;
    const lead = 31 - Math.clz32(mantissa);
    word[0] = (sign << 31) | ((lead - 9 + 127) << 23) | ((mantissa & ((1 << lead) - 1)) << (23 - lead));
  } else {
    word[0] = (sign << 31) | ((exponent - 7 + 127) << 23) | (mantissa << 20);
  }
  return f[0];
}

const SPEC = Array.from({ length: 256 }, (_, code) => specValue(code));

/** The finite code nearest to x by exhaustive search (ties to the even code), saturating at ±448. */
function nearestCode(x: number): number {
  const a = Math.min(Math.abs(x), 448);
  let best = 0;
  for (let code = 1; code <= 0x7e; ++code) {
    const d = Math.abs(SPEC[code] - a) - Math.abs(SPEC[best] - a);
    if (d < 0 || (d === 0 && code % 2 === 0)) best = code;
  }
  return (x < 0 || Object.is(x, -0) ? 0x80 : 0) | best;
}

describe('fp8 e4m3', () => {
  it('decodes all 256 codes to the OCP E4M3FN values, and encodes every finite value back to its code', () => {
    for (let code = 0; code < 256; ++code) {
      const expected = specValue(code);
      assert.ok(Object.is(decodeE4M3(code), expected), `code 0x${code.toString(16)}: ${decodeE4M3(code)} vs ${expected}`);
      if (!Number.isNaN(expected)) assert.equal(encodeE4M3(expected), code, `encode(decode(0x${code.toString(16)}))`);
    }
    // Landmarks of the spec's table, written out.
    const landmarks: [number, number][] = [[0x00, 0], [0x01, 2 ** -9], [0x07, 7 * 2 ** -9], [0x08, 2 ** -6], [0x38, 1], [0x39, 1.125], [0x40, 2], [0x77, 240], [0x7d, 416], [0x7e, 448], [0xb8, -1], [0xfe, -448]];
    for (const [code, value] of landmarks) assert.equal(decodeE4M3(code), value, `0x${code.toString(16)}`);
    assert.ok(Object.is(decodeE4M3(0x80), -0) && Number.isNaN(decodeE4M3(0x7f)) && Number.isNaN(decodeE4M3(0xff)));
    const codes = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(decodeE4M3Array(codes), E4M3_VALUES);
  });

  it('rounds to nearest with ties to the even code, saturates at ±448, and encodes NaN as 0x7f', () => {
    for (const sign of [1, -1]) {
      for (let code = 0; code < 0x7e; ++code) {
        const below = specValue(code);
        const above = specValue(code + 1);
        const mid = (below + above) / 2; // exact: both are dyadic with few bits
        const even = code % 2 === 0 ? code : code + 1;
        const s = sign < 0 ? 0x80 : 0;
        assert.equal(encodeE4M3(sign * mid), s | even, `tie between 0x${code.toString(16)} and 0x${(code + 1).toString(16)} (sign ${sign})`);
        // Just off the midpoint the nearer one wins (the gap is ≥ 2⁻⁹, so 2⁻²⁰ is well inside it).
        assert.equal(encodeE4M3(sign * (mid - 2 ** -20)), s | code, `below the midpoint after 0x${code.toString(16)}`);
        assert.equal(encodeE4M3(sign * (mid + 2 ** -20)), s | (code + 1), `above the midpoint after 0x${code.toString(16)}`);
      }
    }
    for (const x of [448, 448.0001, 464, 479.9, 480, 1e6, Infinity]) {
      assert.equal(encodeE4M3(x), 0x7e, `saturates ${x}`);
      assert.equal(encodeE4M3(-x), 0xfe, `saturates ${-x}`);
    }
    assert.equal(encodeE4M3(NaN), 0x7f);
    assert.equal(encodeE4M3(-0), 0x80, 'keeps the sign of zero');
    assert.equal(encodeE4M3(-(2 ** -11)), 0x80, 'a negative that rounds to zero is −0');
    assert.equal(encodeE4M3(2 ** -10), 0x00, 'half the smallest subnormal ties to 0 (even)');
    assert.equal(encodeE4M3(3 * 2 ** -10), 0x02, '1.5 subnormal steps tie to 2 (even)');
    // Random magnitudes over the whole range (and beyond) against the exhaustive search.
    const random = rng(81);
    const xs = Array.from({ length: 3000 }, () => (random() - 0.5) * 2 ** (Math.floor(random() * 26) - 14));
    const codes = encodeE4M3Array(Float32Array.from(xs));
    xs.forEach((x, i) => assert.equal(codes[i], nearestCode(Math.fround(x)), `encode(${Math.fround(x)})`));
  });

  it("matches torch's float8_e4m3fn cast byte for byte on random f32 values and on every midpoint", function () {
    const python = float8Python();
    if (!python) {
      console.log('      (skipped: no Python with torch.float8_e4m3fn here — torch ≥ 2.1; set SPARQ_PYTHON to one)');
      this.skip();
    }
    const random = rng(82);
    const values: number[] = [];
    for (let i = 0; i < 20000; ++i) values.push((random() - 0.5) * 2 * 448 * 2 ** -Math.floor(random() * 20));
    for (let code = 0; code < 0x7e; ++code) values.push((specValue(code) + specValue(code + 1)) / 2, -(specValue(code) + specValue(code + 1)) / 2);
    // torch's cast turns |x| > 448 into NaN (it does not saturate): compare within the finite range only.
    const input = Float32Array.from(values, (v) => Math.max(-448, Math.min(448, v)));
    const dir = mkdtempSync(join(tmpdir(), 'sparq-fp8-'));
    try {
      writeFileSync(join(dir, 'in.f32'), new Uint8Array(input.buffer));
      const script = [
        'import sys, torch',
        "x = torch.frombuffer(bytearray(open(sys.argv[1], 'rb').read()), dtype=torch.float32)",
        "open(sys.argv[2], 'wb').write(x.to(torch.float8_e4m3fn).view(torch.uint8).numpy().tobytes())",
      ].join('\n');
      const run = spawnSync(python!, ['-c', script, join(dir, 'in.f32'), join(dir, 'out.u8')], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const theirs = new Uint8Array(readFileSync(join(dir, 'out.u8')));
      const ours = encodeE4M3Array(input);
      assert.equal(theirs.length, ours.length);
      for (let i = 0; i < ours.length; ++i) assert.equal(ours[i], theirs[i], `encode(${input[i]}): ours 0x${ours[i].toString(16)}, torch 0x${theirs[i].toString(16)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
