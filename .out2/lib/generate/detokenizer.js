/** Prompt tokens decoded before the first generated one, for the spacing context. */
const PROMPT_CONTEXT = 5;
const REPLACEMENT_CHARACTER = '\uFFFD';
export class IncrementalDetokenizer {
    tokenizer;
    tokens;
    /** tokens[prefixStart, readStart) were emitted and give context; tokens[readStart…] are not emitted yet. */
    prefixStart;
    readStart;
    constructor(tokenizer, prompt) {
        this.tokenizer = tokenizer;
        this.tokens = Array.from(prompt);
        this.readStart = this.tokens.length;
        this.prefixStart = Math.max(0, this.readStart - PROMPT_CONTEXT);
    }
    /** Adds one token; returns the text it completes (often '', for a partial character). */
    push(token) {
        this.tokens.push(token);
        return this.emit(false);
    }
    /** Whatever is still held back (an incomplete character at the end), as the tokenizer decodes it. */
    flush() {
        return this.emit(true);
    }
    emit(final) {
        if (this.readStart === this.tokens.length)
            return '';
        const prefix = this.tokenizer.decode(this.tokens.slice(this.prefixStart, this.readStart));
        const text = this.tokenizer.decode(this.tokens.slice(this.prefixStart));
        if (!final && (text.length <= prefix.length || text.endsWith(REPLACEMENT_CHARACTER)))
            return '';
        this.prefixStart = this.readStart;
        this.readStart = this.tokens.length;
        return text.startsWith(prefix) ? text.slice(prefix.length) : text.slice(Math.min(prefix.length, text.length));
    }
}
//# sourceMappingURL=detokenizer.js.map