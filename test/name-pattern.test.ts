// Recipe name patterns: the linear-time matcher agrees with JavaScript's RegExp on whole-name matches,
// finishes at once on patterns that make a backtracking engine take minutes, and refuses what it does not
// support with an error naming the recipe field.
import assert from 'node:assert/strict';
import { compilePattern, InvalidArgumentError } from '../lib/index.js';
import { rng } from './helpers.js';

const NAMES = [
  'model.layers.0.self_attn.q_proj',
  'model.layers.11.self_attn.k_proj',
  'model.layers.3.mlp.down_proj',
  'model.layers.31.mlp.gate_proj',
  'model.decoder.layers.7.fc1',
  'model.layers.2.block_sparse_moe.experts.5.w2',
  'model.layers.2.block_sparse_moe.gate',
  '',
  'a',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab',
  'x{1}y',
  'tab\there',
];

const REGEXES = [
  '.*',
  '.*self_attn\\.[qkv]_proj',
  'model\\.layers\\.(0|1|2)\\..*',
  'model\\.layers\\.\\d+\\.mlp\\.(gate|up)_proj',
  'model\\.layers\\.\\d{1,2}\\..*',
  'model\\.layers\\.[^0]\\d*\\..*',
  '(?:model\\.)?layers.*',
  '^model.*proj$',
  'a*',
  'a+b',
  '(a|aa)*b',
  '(a*)*b',
  '(a?){3}a{3}',
  'x\\{1\\}y',
  '[\\w.]+',
  '[a-c\\-]*',
  '\\S+',
  '\\D*\\d+\\D*',
  '.*experts\\.[0-4]\\.w[123]',
  '(|a)+',
  'tab\\there',
  '[^.]*',
  'model.layers.3.mlp.down_proj',
  '.*(gate|up|down)_proj.*?',
  '.{5,}',
  '.{0,3}',
];

describe('recipe name patterns', () => {
  it('match exactly the names that an anchored JavaScript RegExp matches', () => {
    for (const source of REGEXES) {
      const reference = new RegExp(`^(?:${source})$`);
      const pattern = compilePattern(`re:${source}`, 'targets[0]');
      for (const name of NAMES) assert.equal(pattern.test(name), reference.test(name), `re:${source} on '${name}'`);
    }
  });

  it('agree with RegExp on random patterns over a small alphabet (fixed seed)', () => {
    const random = rng(11);
    const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
    const atoms = ['a', 'b', '.', '[ab]', '[^a]', '\\d', '(a|b)', '(ab|a)', '(?:b|)'];
    const quantifiers = ['', '', '*', '+', '?', '{2}', '{1,3}', '{0,}'];
    const word = () => Array.from({ length: Math.floor(random() * 7) }, () => pick(['a', 'b', '1', '.'])).join('');
    for (let i = 0; i < 400; ++i) {
      const source = Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(atoms) + pick(quantifiers)).join(random() < 0.2 ? '|' : '');
      const reference = new RegExp(`^(?:${source})$`);
      const pattern = compilePattern(`re:${source}`, 'p');
      for (let k = 0; k < 12; ++k) {
        const name = word();
        assert.equal(pattern.test(name), reference.test(name), `re:${source} on '${name}'`);
      }
    }
  });

  it('treats globs as whole-name patterns with * and ? and everything else literal', () => {
    const cases: [string, string, boolean][] = [
      ['*', 'anything.at.all', true],
      ['*.mlp.*', 'model.layers.3.mlp.down_proj', true],
      ['*.mlp.*', 'model.layers.3.self_attn.q_proj', false],
      ['model.layers.?.mlp.*', 'model.layers.3.mlp.up_proj', true],
      ['model.layers.?.mlp.*', 'model.layers.13.mlp.up_proj', false],
      ['model.layers.[0-9]*', 'model.layers.3.mlp', false],
      ['model.layers.[0-9]*', 'model.layers.[0-9].x', true],
      ['a+b', 'a+b', true],
      ['a+b', 'aab', false],
    ];
    for (const [glob, name, expected] of cases) assert.equal(compilePattern(glob, 'g').test(name), expected, `${glob} on ${name}`);
  });

  it('matches patterns that make a backtracking engine hang with work linear in the name (states × characters)', () => {
    const name = `model.layers.12.${'a'.repeat(200)}`;
    // Counted, not timed: a backtracking engine makes exponentially many character tests on these; the
    // automaton makes at most one per state per character of the name, whatever the machine's load.
    for (const source of ['re:(.*)*X', 're:(a|aa)*c', 're:(a*)*b', 're:((a+)+)+$', `re:${'(.*)'.repeat(30)}X`, `${'*a'.repeat(40)}X`]) {
      const pattern = compilePattern(source, 'targets[0]');
      const { matched, characterTests } = pattern.testCounting(name);
      assert.equal(matched, false, source);
      assert.equal(pattern.test(name), false, source);
      assert.ok(characterTests <= pattern.states * name.length, `${source}: ${characterTests} character tests for ${pattern.states} states × ${name.length} characters`);
      assert.ok(characterTests > 0, source);
    }
  });

  it('refuses unsupported syntax and oversized patterns, naming the field', () => {
    const refused: [string, RegExp][] = [
      ['re:(a)\\1', /targets\[2\]: invalid regular expression '\(a\)\\1': backreferences are not supported/],
      ['re:a(?=b)', /lookaround and named groups are not supported/],
      ['re:(?<x>a)', /lookaround and named groups are not supported/],
      ['re:*a', /nothing to repeat before '\*'/],
      ['re:a**', /a quantifier cannot follow another quantifier/],
      ['re:(ab', /missing '\)'/],
      ['re:ab)', /unmatched '\)'/],
      ['re:[ab', /missing '\]'/],
      ['re:a{3,1}', /out of order/],
      ['re:a{2000}', /counts above 1000/],
      ['re:a\\bc', /the escape '\\b' is not supported/],
      ['re:a^b', /'\^' is only supported at the start/],
      ['re:(a{1000}){1000}', /too large/],
      [`re:${'a'.repeat(1001)}`, /at most 1000 are accepted/],
    ];
    for (const [source, message] of refused) {
      assert.throws(() => compilePattern(source, 'targets[2]'), (e: Error) => e instanceof InvalidArgumentError && message.test(e.message), source);
    }
  });
});
