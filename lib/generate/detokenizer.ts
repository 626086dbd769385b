// Text of generated tokens as they arrive. Decoding token by token is wrong in general: a byte-fallback
// or byte-level BPE piece may hold part of a UTF-8 character, and decoders strip or merge spaces
// depending on what precedes a token. So each new token is decoded together with a few tokens before it
// (`prefix`), and what it adds is the difference between that text and the prefix's own text; while the
// text ends in U+FFFD (an incomplete character) nothing is emitted until the next token completes it.
import type { TextTokenizer } from '../io/tokenizer.js';

/** Prompt tokens decoded before the first generated one, for the spacing context. */
const PROMPT_CONTEXT = 5;
const REPLACEMENT_CHARACTER = '\uFFFD';

export class IncrementalDetokenizer {
  private readonly tokens: number[];
  /** tokens[prefixStart, readStart) were emitted and give context; tokens[readStart…] are not emitted yet. */
  private prefixStart: number;
  private readStart: number;

  constructor(
    private readonly tokenizer: TextTokenizer,
    prompt: ArrayLike<number>,
  ) {
    this.tokens = Array.from(prompt);
    this.readStart = this.tokens.length;
    this.prefixStart = Math.max(0, this.readStart - PROMPT_CONTEXT);
  }

  /** Adds one token; returns the text it completes (often '', for a partial character). */
  push(token: number): string {
    this.tokens.push(token);
    return this.emit(false);
  }

  /** Whatever is still held back (an incomplete character at the end), as the tokenizer decodes it. */
  flush(): string {
    return this.emit(true);
  }

  private emit(final: boolean): string {
    if (this.readStart === this.tokens.length) return '';
    const prefix = this.tokenizer.decode(this.tokens.slice(this.prefixStart, this.readStart));
    const text = this.tokenizer.decode(this.tokens.slice(this.prefixStart));
    if (!final && (text.length <= prefix.length || text.endsWith(REPLACEMENT_CHARACTER))) return '';
    this.prefixStart = this.readStart;
    this.readStart = this.tokens.length;
    return text.startsWith(prefix) ? text.slice(prefix.length) : text.slice(Math.min(prefix.length, text.length));
  }
}
