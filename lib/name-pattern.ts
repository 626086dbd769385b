// Name patterns for recipes: globs (`*` any characters, `?` one) and `re:` regular expressions, both
// matching a whole module name. JavaScript's RegExp backtracks, so a pattern such as `(.*)*X` can take
// minutes on one name while the event loop (and Ctrl-C) waits. Patterns are therefore compiled to a
// Thompson NFA and matched by stepping the set of live states over the name: time is at most
// O(name length × pattern states), whatever the pattern.
//
// Supported: literals, `.`, classes `[a-z0-9_]` / `[^…]`, escapes `\d \w \s \D \W \S` and escaped
// punctuation, groups `(…)` and `(?:…)`, alternation `|`, quantifiers `* + ? {n} {n,} {n,m}` (lazy
// forms accepted: a whole-name match does not depend on laziness), and `^` / `$` at the ends.
// Refused with a clear error: backreferences, lookaround, and patterns over the size limits.
import { InvalidArgumentError } from './errors.js';

/** Longest pattern accepted, in characters. */
const MAX_PATTERN_LENGTH = 1000;
/** Most NFA states a pattern may compile to (bounds `{n,m}` expansion). */
const MAX_STATES = 20000;

type CharTest = (code: number) => boolean;

type Node =
  | { kind: 'char'; test: CharTest }
  | { kind: 'concat'; items: Node[] }
  | { kind: 'alternate'; options: Node[] }
  | { kind: 'repeat'; item: Node; min: number; max: number } // max Infinity = unbounded
  | { kind: 'empty' };

export interface NamePattern {
  /** The pattern as written. */
  readonly source: string;
  /** True when the pattern matches the whole name. */
  test(name: string): boolean;
  /** States of the compiled automaton: a match tests at most this many per character of the name. */
  readonly states: number;
  /** test(), also counting the character tests it made (the work bound tests check). */
  testCounting(name: string): { matched: boolean; characterTests: number };
}

const isDigit: CharTest = (c) => c >= 48 && c <= 57;
const isWord: CharTest = (c) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isSpace: CharTest = (c) => c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0xfeff || c === 0x2028 || c === 0x2029;
const notLineBreak: CharTest = (c) => c !== 10 && c !== 13 && c !== 0x2028 && c !== 0x2029;

class Parser {
  private position = 0;
  constructor(
    private readonly text: string,
    private readonly where: string,
  ) {}

  fail(what: string): never {
    throw new InvalidArgumentError(`${this.where}: invalid regular expression '${this.text}': ${what} at position ${this.position}`);
  }

  parse(): Node {
    if (this.text.startsWith('^')) this.position = 1;
    const node = this.alternation();
    if (this.position < this.text.length) this.fail(this.text[this.position] === ')' ? "unmatched ')'" : `unexpected '${this.text[this.position]}'`);
    return node;
  }

  private peek(): string | undefined {
    return this.text[this.position];
  }

  private alternation(): Node {
    const options = [this.sequence()];
    while (this.peek() === '|') {
      this.position += 1;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0] : { kind: 'alternate', options };
  }

  private sequence(): Node {
    const items: Node[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '|' || c === ')') break;
      if (c === '$' && (this.position === this.text.length - 1 || this.text[this.position + 1] === '|' || this.text[this.position + 1] === ')')) {
        // An end anchor changes nothing: names are always matched whole.
        this.position += 1;
        continue;
      }
      items.push(this.quantified(this.atom()));
    }
    return items.length === 1 ? items[0] : items.length === 0 ? { kind: 'empty' } : { kind: 'concat', items };
  }

  private quantified(item: Node): Node {
    let node = item;
    let quantifiers = 0;
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      if (c === '*') [min, max] = [0, Infinity];
      else if (c === '+') [min, max] = [1, Infinity];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{') {
        const braces = /^\{(\d+)(,(\d*))?\}/.exec(this.text.slice(this.position));
        if (!braces) this.fail("'{' must start a count such as {2}, {2,} or {2,5} (write \\{ for a literal brace)");
        min = Number(braces[1]);
        max = braces[2] === undefined ? min : braces[3] === '' ? Infinity : Number(braces[3]);
        if (max < min) this.fail(`the count {${min},${max}} is out of order`);
        if (min > 1000 || (max !== Infinity && max > 1000)) this.fail('counts above 1000 are not supported');
        this.position += braces[0].length - 1;
      } else {
        return node;
      }
      this.position += 1;
      if (this.peek() === '?') this.position += 1; // lazy: same whole-name result
      if (++quantifiers > 1) this.fail('a quantifier cannot follow another quantifier');
      node = { kind: 'repeat', item: node, min, max };
    }
  }

  private atom(): Node {
    const c = this.peek()!;
    this.position += 1;
    switch (c) {
      case '.':
        return { kind: 'char', test: notLineBreak };
      case '[':
        return { kind: 'char', test: this.characterClass() };
      case '(': {
        if (this.text.startsWith('?:', this.position)) this.position += 2;
        else if (this.peek() === '?') this.fail("lookaround and named groups are not supported (only '(…)' and '(?:…)')");
        const inner = this.alternation();
        if (this.peek() !== ')') this.fail("missing ')'");
        this.position += 1;
        return inner;
      }
      case '\\':
        return { kind: 'char', test: this.escape(false) };
      case '*':
      case '+':
      case '?':
      case '{':
        this.position -= 1;
        return this.fail(`nothing to repeat before '${c}'`);
      case '^':
        this.position -= 1;
        return this.fail("'^' is only supported at the start");
      case '$':
        this.position -= 1;
        return this.fail("'$' is only supported at the end");
      default: {
        const code = c.charCodeAt(0);
        return { kind: 'char', test: (x) => x === code };
      }
    }
  }

  /** After a backslash: a class escape (\d \w \s and negations) or an escaped character. */
  private escape(inClass: boolean): CharTest {
    const c = this.peek();
    if (c === undefined) this.fail('the pattern ends with a backslash');
    this.position += 1;
    switch (c) {
      case 'd':
        return isDigit;
      case 'D':
        return (x) => !isDigit(x);
      case 'w':
        return isWord;
      case 'W':
        return (x) => !isWord(x);
      case 's':
        return isSpace;
      case 'S':
        return (x) => !isSpace(x);
      case 't':
        return (x) => x === 9;
      case 'n':
        return (x) => x === 10;
      default:
        if (/[0-9]/.test(c)) {
          this.position -= 1;
          this.fail(inClass ? 'numeric escapes are not supported' : 'backreferences are not supported');
        }
        if (/[a-zA-Z]/.test(c)) {
          this.position -= 1;
          this.fail(`the escape '\\${c}' is not supported (supported: \\d \\w \\s \\D \\W \\S \\t \\n and escaped punctuation)`);
        }
        return (x) => x === c.charCodeAt(0);
    }
  }

  private characterClass(): CharTest {
    const negated = this.peek() === '^';
    if (negated) this.position += 1;
    const parts: CharTest[] = [];
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail("missing ']'");
      if (c === ']' && !first) break;
      first = false;
      let low: number | undefined;
      if (c === '\\') {
        this.position += 1;
        const before = this.position;
        const test = this.escape(true);
        const escaped = this.text[before];
        if (/[dDwWsS]/.test(escaped)) {
          parts.push(test);
          continue;
        }
        low = escaped === 't' ? 9 : escaped === 'n' ? 10 : escaped.charCodeAt(0);
      } else {
        this.position += 1;
        low = c.charCodeAt(0);
      }
      if (this.peek() === '-' && this.text[this.position + 1] !== undefined && this.text[this.position + 1] !== ']') {
        this.position += 1;
        let high = this.peek()!.charCodeAt(0);
        if (this.peek() === '\\') {
          this.position += 1;
          const escaped = this.peek();
          if (escaped === undefined || /[a-zA-Z0-9]/.test(escaped)) this.fail('a range must end with a character');
          high = escaped.charCodeAt(0);
        }
        this.position += 1;
        if (high < low) this.fail('a character range is out of order');
        const [from, to] = [low, high];
        parts.push((x) => x >= from && x <= to);
      } else {
        const only = low;
        parts.push((x) => x === only);
      }
    }
    this.position += 1; // ']'
    return negated ? (x) => !parts.some((p) => p(x)) : (x) => parts.some((p) => p(x));
  }
}

/** A compiled NFA: state i is a character test, a split, or the match. */
interface Nfa {
  tests: (CharTest | undefined)[];
  next: number[];
  /** Second successor of split states (-1 elsewhere). */
  alternative: number[];
  start: number;
  accept: number;
}

class NfaBuilder {
  readonly tests: (CharTest | undefined)[] = [];
  readonly next: number[] = [];
  readonly alternative: number[] = [];

  constructor(private readonly where: string) {}

  state(test: CharTest | undefined, next = -1, alternative = -1): number {
    if (this.tests.length >= MAX_STATES) {
      throw new InvalidArgumentError(`${this.where}: the pattern is too large (over ${MAX_STATES} states after expanding its counts); simplify it`);
    }
    this.tests.push(test);
    this.next.push(next);
    this.alternative.push(alternative);
    return this.tests.length - 1;
  }

  /** Compiles `node` so that it continues to state `then`; returns its entry state. */
  compile(node: Node, then: number): number {
    switch (node.kind) {
      case 'empty':
        return then;
      case 'char':
        return this.state(node.test, then);
      case 'concat': {
        let entry = then;
        for (let i = node.items.length - 1; i >= 0; --i) entry = this.compile(node.items[i], entry);
        return entry;
      }
      case 'alternate': {
        let entry = this.compile(node.options[node.options.length - 1], then);
        for (let i = node.options.length - 2; i >= 0; --i) entry = this.state(undefined, this.compile(node.options[i], then), entry);
        return entry;
      }
      case 'repeat': {
        let entry = then;
        if (node.max === Infinity) {
          // A loop: split into the item (which comes back to the split) or onwards.
          const loop = this.state(undefined, -1, then);
          this.next[loop] = this.compile(node.item, loop);
          entry = loop;
        } else {
          for (let i = node.min; i < node.max; ++i) entry = this.state(undefined, this.compile(node.item, entry), then);
        }
        for (let i = 0; i < node.min; ++i) entry = this.compile(node.item, entry);
        return entry;
      }
    }
  }
}

function compileNfa(node: Node, where: string): Nfa {
  const builder = new NfaBuilder(where);
  const accept = builder.state(undefined);
  const start = builder.compile(node, accept);
  return { tests: builder.tests, next: builder.next, alternative: builder.alternative, start, accept };
}

/** Runs the NFA over the whole name, one character at a time; `work.tests` counts the character tests. */
function matches(nfa: Nfa, name: string, work = { tests: 0 }): boolean {
  const count = nfa.tests.length;
  let current = new Int32Array(count);
  let next = new Int32Array(count);
  let currentSize = 0;
  let nextSize = 0;
  const seen = new Int32Array(count).fill(-1);
  const stack: number[] = [];
  // Adds a state and everything reachable from it through splits (the ε-closure) to the list.
  const add = (list: Int32Array, size: number, state: number, generation: number): number => {
    stack.push(state);
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (s < 0 || seen[s] === generation) continue;
      seen[s] = generation;
      if (nfa.tests[s] === undefined && s !== nfa.accept) {
        stack.push(nfa.alternative[s], nfa.next[s]);
      } else {
        list[size++] = s;
      }
    }
    return size;
  };
  currentSize = add(current, 0, nfa.start, 0);
  for (let i = 0; i < name.length; ++i) {
    const code = name.charCodeAt(i);
    nextSize = 0;
    for (let k = 0; k < currentSize; ++k) {
      const s = current[k];
      const test = nfa.tests[s];
      if (test !== undefined) work.tests++;
      if (test !== undefined && test(code)) nextSize = add(next, nextSize, nfa.next[s], i + 1);
    }
    [current, next] = [next, current];
    currentSize = nextSize;
    if (currentSize === 0) return false;
  }
  for (let k = 0; k < currentSize; ++k) if (current[k] === nfa.accept) return true;
  return false;
}

function globToNode(glob: string): Node {
  const items: Node[] = [];
  for (const c of glob) {
    if (c === '*') items.push({ kind: 'repeat', item: { kind: 'char', test: () => true }, min: 0, max: Infinity });
    else if (c === '?') items.push({ kind: 'char', test: () => true });
    else {
      const code = c.charCodeAt(0);
      // Characters outside the basic plane are two UTF-16 units; match them unit by unit.
      if (c.length === 1) items.push({ kind: 'char', test: (x) => x === code });
      else for (let k = 0; k < c.length; ++k) {
        const unit = c.charCodeAt(k);
        items.push({ kind: 'char', test: (x) => x === unit });
      }
    }
  }
  return { kind: 'concat', items };
}

/**
 * Compiles a glob or a `re:` regular expression into a whole-name matcher that runs in linear time.
 * `where` names the recipe field in errors.
 */
export function compilePattern(pattern: string, where: string): NamePattern {
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new InvalidArgumentError(`${where}: the pattern has ${pattern.length} characters; at most ${MAX_PATTERN_LENGTH} are accepted`);
  }
  const node = pattern.startsWith('re:') ? new Parser(pattern.slice(3), where).parse() : globToNode(pattern);
  const nfa = compileNfa(node, where);
  return {
    source: pattern,
    test: (name) => matches(nfa, name),
    states: nfa.tests.length,
    testCounting: (name) => {
      const work = { tests: 0 };
      const matched = matches(nfa, name, work);
      return { matched, characterTests: work.tests };
    },
  };
}
