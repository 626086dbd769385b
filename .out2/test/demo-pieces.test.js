// The pieces of `sparq demo`: the State-of-the-Union corpus, the byte-level BPE trainer and the SVG chart.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InvalidArgumentError } from '../lib/errors.js';
import { loadTokenizer } from '../lib/io/tokenizer.js';
import { loadSotuAddresses, loadSotuText, SOTU_EVAL_FROM_YEAR } from '../lib/demo/dataset.js';
import { BYTE_TO_CHAR, byteLevelBpeTokenizerConfig, GPT2_PRETOKENIZE_PATTERN, trainByteLevelBpe } from '../lib/demo/bpe.js';
import { lineChart, logTicks } from '../lib/demo/svg-chart.js';
// ---------------------------------------------------------------------------------------------------------
// Helpers
/** Pre-tokenized pieces as byte-level symbol strings (GPT-2 characters), the way ByteLevel encodes. */
function pieces(text) {
    const encoder = new TextEncoder();
    return (text.match(new RegExp(GPT2_PRETOKENIZE_PATTERN.source, 'gu')) ?? []).map((p) => Array.from(encoder.encode(p), (b) => BYTE_TO_CHAR[b]).join(''));
}
/** Textbook BPE training: recount every pair from scratch before each merge; same tie-break (smaller ids). */
function referenceMerges(text, vocabSize) {
    const ids = new Map(BYTE_TO_CHAR.map((c, i) => [c, i]));
    const names = BYTE_TO_CHAR.slice();
    const counts = new Map();
    for (const p of pieces(text))
        counts.set(p, (counts.get(p) ?? 0) + 1);
    let words = [...counts].map(([p, f]) => ({ syms: Array.from(p), f }));
    const merges = [];
    while (names.length < vocabSize) {
        const pairs = new Map();
        for (const { syms, f } of words)
            for (let i = 0; i + 1 < syms.length; ++i)
                pairs.set(`${syms[i]} ${syms[i + 1]}`, (pairs.get(`${syms[i]} ${syms[i + 1]}`) ?? 0) + f);
        let best;
        let bestCount = 0;
        let bestKey = [0, 0];
        for (const [pair, count] of pairs) {
            const [a, b] = pair.split(' ');
            const key = [ids.get(a), ids.get(b)];
            if (count > bestCount || (count === bestCount && (key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])))) {
                best = pair;
                bestCount = count;
                bestKey = key;
            }
        }
        if (best === undefined)
            break;
        const [a, b] = best.split(' ');
        merges.push(best);
        if (!ids.has(a + b)) {
            ids.set(a + b, names.length);
            names.push(a + b);
        }
        words = words.map(({ syms, f }) => {
            const out = [];
            for (let i = 0; i < syms.length;) {
                if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
                    out.push(a + b);
                    i += 2;
                }
                else
                    out.push(syms[i++]);
            }
            return { syms: out, f };
        });
    }
    return merges;
}
/** Canonical BPE encoding: within each piece, repeatedly merge the leftmost pair of lowest merge rank. */
function referenceEncode(json, text) {
    const rank = new Map(json.model.merges.map((m, i) => [m, i]));
    const out = [];
    for (const piece of pieces(text)) {
        const syms = Array.from(piece);
        for (;;) {
            let best = -1;
            let bestRank = Infinity;
            for (let i = 0; i + 1 < syms.length; ++i) {
                const r = rank.get(`${syms[i]} ${syms[i + 1]}`);
                if (r !== undefined && r < bestRank) {
                    bestRank = r;
                    best = i;
                }
            }
            if (best < 0)
                break;
            syms.splice(best, 2, syms[best] + syms[best + 1]);
        }
        for (const s of syms)
            out.push(json.model.vocab[s]);
    }
    return out;
}
/**
 * A strict little XML well-formedness checker (elements, attributes, character data, entity and character
 * references, comments, the XML declaration): throws on the first error, returns the root element.
 */
function parseXml(xml) {
    let i = 0;
    const fail = (why) => {
        throw new Error(`not well-formed XML at offset ${i}: ${why} (near ${JSON.stringify(xml.slice(Math.max(0, i - 30), i + 30))})`);
    };
    const NAME = /[A-Za-z_:][A-Za-z0-9_:.-]*/y;
    const readName = () => {
        NAME.lastIndex = i;
        const m = NAME.exec(xml);
        if (!m)
            fail('expected a name');
        i += m[0].length;
        return m[0];
    };
    const skipSpace = () => {
        while (i < xml.length && ' \t\r\n'.includes(xml[i]))
            ++i;
    };
    const decode = (raw) => {
        let out = '';
        for (let k = 0; k < raw.length;) {
            const ch = raw[k];
            if (ch === '<')
                fail('"<" in character data');
            if (ch !== '&') {
                out += ch;
                ++k;
                continue;
            }
            const end = raw.indexOf(';', k);
            if (end < 0)
                fail('unterminated reference');
            const ref = raw.slice(k + 1, end);
            const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
            if (ref in named)
                out += named[ref];
            else if (/^#[0-9]+$/.test(ref))
                out += String.fromCodePoint(Number(ref.slice(1)));
            else if (/^#x[0-9A-Fa-f]+$/.test(ref))
                out += String.fromCodePoint(parseInt(ref.slice(2), 16));
            else
                fail(`unknown reference &${ref};`);
            k = end + 1;
        }
        for (const c of out) {
            const cp = c.codePointAt(0);
            if ((cp < 0x20 && c !== '\t' && c !== '\n' && c !== '\r') || (cp >= 0xd800 && cp <= 0xdfff) || cp === 0xfffe || cp === 0xffff)
                fail(`character U+${cp.toString(16)} is not allowed`);
        }
        return out;
    };
    if (xml.startsWith('<?xml')) {
        const end = xml.indexOf('?>');
        if (end < 0)
            fail('unterminated XML declaration');
        i = end + 2;
    }
    let root;
    const stack = [];
    while (i < xml.length) {
        if (xml.startsWith('<!--', i)) {
            const end = xml.indexOf('-->', i + 4);
            if (end < 0)
                fail('unterminated comment');
            i = end + 3;
        }
        else if (xml.startsWith('</', i)) {
            i += 2;
            const name = readName();
            skipSpace();
            if (xml[i] !== '>')
                fail('expected ">" to end a closing tag');
            ++i;
            const open = stack.pop();
            if (!open || open.name !== name)
                fail(`</${name}> does not close <${open?.name ?? '(nothing)'}>`);
        }
        else if (xml[i] === '<') {
            ++i;
            const element = { name: readName(), attrs: {}, children: [] };
            for (;;) {
                const before = i;
                skipSpace();
                if (xml[i] === '>' || xml.startsWith('/>', i))
                    break;
                if (i === before)
                    fail('expected white space before an attribute');
                const attr = readName();
                if (attr in element.attrs)
                    fail(`duplicate attribute ${attr}`);
                skipSpace();
                if (xml[i] !== '=')
                    fail('expected "="');
                ++i;
                skipSpace();
                const quote = xml[i];
                if (quote !== '"' && quote !== "'")
                    fail('expected a quoted attribute value');
                const end = xml.indexOf(quote, i + 1);
                if (end < 0)
                    fail('unterminated attribute value');
                element.attrs[attr] = decode(xml.slice(i + 1, end));
                i = end + 1;
            }
            if (stack.length === 0) {
                if (root)
                    fail('more than one root element');
                root = element;
            }
            else
                stack[stack.length - 1].children.push(element);
            if (xml[i] === '>') {
                stack.push(element);
                i += 1;
            }
            else
                i += 2;
        }
        else {
            const end = xml.indexOf('<', i) < 0 ? xml.length : xml.indexOf('<', i);
            const text = decode(xml.slice(i, end));
            if (stack.length === 0) {
                if (text.trim() !== '')
                    fail('text outside the root element');
            }
            else
                stack[stack.length - 1].children.push(text);
            i = end;
        }
    }
    if (stack.length > 0)
        fail(`<${stack[stack.length - 1].name}> is never closed`);
    if (!root)
        fail('no root element');
    return root;
}
function descendants(element) {
    return element.children.flatMap((c) => (typeof c === 'string' ? [] : [c, ...descendants(c)]));
}
function textOf(element) {
    return element.children.map((c) => (typeof c === 'string' ? c : textOf(c))).join('');
}
// ---------------------------------------------------------------------------------------------------------
describe('demo: State-of-the-Union corpus', function () {
    it('orders addresses by year and splits train (before 2001) from eval (2001 on)', function () {
        const addresses = loadSotuAddresses();
        assert.ok(addresses.length > 200, `only ${addresses.length} addresses`);
        for (let k = 1; k < addresses.length; ++k)
            assert.ok(addresses[k - 1].year <= addresses[k].year, `address ${k} out of order`);
        const text = loadSotuText();
        assert.match(text.source, /^@stdlib\/datasets-sotu@\d+\.\d+\.\d+/);
        assert.equal(text.evalFromYear, SOTU_EVAL_FROM_YEAR);
        const split = addresses.findIndex((a) => a.year >= SOTU_EVAL_FROM_YEAR);
        assert.equal(text.trainAddresses, split);
        assert.equal(text.evalAddresses, addresses.length - split);
        assert.ok(text.train.length > 1e6 && text.eval.length > 1e5, `train ${text.train.length} chars, eval ${text.eval.length} chars`);
        // Oldest address first in train, 2001's first in eval, the newest last.
        assert.ok(text.train.startsWith(addresses[0].text));
        assert.ok(text.train.endsWith(addresses[split - 1].text));
        assert.ok(text.eval.startsWith(addresses[split].text));
        assert.ok(text.eval.endsWith(addresses[addresses.length - 1].text));
    });
    it('joins addresses with blank lines', function () {
        const text = loadSotuText();
        assert.equal(text.eval.split('\n\n').length, text.evalAddresses);
        assert.equal(text.train.split('\n\n').length, text.trainAddresses);
    });
});
describe('demo: byte-level BPE', function () {
    const corpus = 'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs!\n' +
        'Naïve café façade — déjà vu. Ünïcödé ümläuts. 東京は日本の首都です。Привет, мир! 😀😀 👩‍👩‍👧 🇺🇸\n' +
        '    indented   code\twith\ttabs\r\nand CRLF lines, numbers 12345 67890, and the end.\n';
    let dir;
    before(async function () {
        dir = await mkdtemp(join(tmpdir(), 'sparq-bpe-'));
    });
    after(async function () {
        await rm(dir, { recursive: true, force: true });
    });
    it('round-trips ASCII, unicode, emoji, whitespace runs and the empty string through the repository loader', async function () {
        const json = trainByteLevelBpe(corpus.repeat(3), 400);
        await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
        await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(byteLevelBpeTokenizerConfig()));
        const tokenizer = await loadTokenizer(dir);
        const samples = [
            'Hello, world!',
            'the quick brown fox',
            ' leading space, trailing space ',
            'spaces before punctuation . , ! ? and don\'t , isn\'t \'s \'ll',
            'Zürich, São Paulo, Kraków, Ærøskøbing',
            '中文字符与日本語のテキスト، العربية، עברית',
            'emoji 😀🎉 family 👩‍👩‍👧‍👦 flag 🇯🇵 skin 👍🏽 keycap 1️⃣',
            'runs   of    spaces\t\t\ttabs\n\n\nnewlines\r\n\r\ncrlf   \n  ',
            '\u0000\u0001 control \u007f\u0085\u00a0nbsp\u200bzwsp\ufeff',
            '<|endoftext|> is plain text here',
            corpus,
            'x',
            ' ',
            '\n',
        ];
        for (const s of samples) {
            const ids = tokenizer.encode(s);
            assert.ok(ids.length > 0);
            assert.equal(tokenizer.decode(ids), s, `round trip of ${JSON.stringify(s)}`);
        }
        // The empty string encodes to no tokens (the library's decode refuses an empty id list).
        assert.equal(tokenizer.encode('').length, 0);
    });
    it('builds exactly the requested vocabulary: 256 byte ids first, every merge part and result in it', function () {
        const text = corpus + loadSotuText().eval.slice(0, 20000);
        for (const size of [256, 257, 300, 1000]) {
            const json = trainByteLevelBpe(text, size);
            const vocab = json.model.vocab;
            const ids = Object.values(vocab).sort((a, b) => a - b);
            assert.equal(ids.length, size);
            ids.forEach((id, k) => assert.equal(id, k));
            BYTE_TO_CHAR.forEach((c, b) => assert.equal(vocab[c], b));
            for (const merge of json.model.merges) {
                const [a, b, extra] = merge.split(' ');
                assert.equal(extra, undefined, `merge ${JSON.stringify(merge)} has more than two parts`);
                assert.ok(a in vocab && b in vocab && a + b in vocab, `merge ${merge}`);
            }
            assert.ok(json.model.merges.length >= size - 256);
            const tokenizer = new Tokenizer(json, byteLevelBpeTokenizerConfig());
            assert.equal(tokenizer.decode(tokenizer.encode(corpus).ids), corpus);
        }
    });
    it('stops early when the text runs out of pairs', function () {
        const json = trainByteLevelBpe('ab ab ab cd', 1000);
        // After a-b (3) and Ġ-ab (2), Ġ-c and c-d tie at 1: Ġ (byte 32) is the smaller id.
        assert.deepEqual(json.model.merges, ['a b', 'Ġ ab', 'Ġ c', 'Ġc d']);
        assert.equal(Object.keys(json.model.vocab).length, 260);
        assert.equal(Object.keys(trainByteLevelBpe('', 300).model.vocab).length, 256);
    });
    it('merges the most frequent pairs first, ties to the smaller ids', function () {
        // Pieces: "low" ×1, " low" ×4, " lower" ×2, " newest" ×6, " widest" ×3. Pair counts: e-s 9 and s-t 9
        // (e < s wins), then es-t 9, l-o 7 and o-w 7 (l < o), then lo-w 7, then the 6s, where (Ġ, n) has the
        // smallest ids ((Ġ, low) has a new, larger right id).
        const text = 'low' + ' low'.repeat(4) + ' lower'.repeat(2) + ' newest'.repeat(6) + ' widest'.repeat(3);
        const json = trainByteLevelBpe(text, 261);
        assert.deepEqual(json.model.merges, ['e s', 'es t', 'l o', 'lo w', 'Ġ n']);
        assert.equal(json.model.vocab['est'], 257);
    });
    it('matches a from-scratch recount of pair frequencies at every merge', function () {
        const text = loadSotuText().eval.slice(0, 30000) + corpus;
        const json = trainByteLevelBpe(text, 700);
        assert.deepEqual(json.model.merges, referenceMerges(text, 700));
    });
    it('matches a from-scratch recount on random small-alphabet texts, down to single-token words', function () {
        let state = 12345;
        const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
        for (let trial = 0; trial < 40; ++trial) {
            const alphabet = ['ab', 'abc', 'aé😀 ', 'ab \n'][trial % 4];
            const chars = Array.from(alphabet);
            let text = '';
            const length = 20 + Math.floor(random() * 200);
            for (let k = 0; k < length; ++k)
                text += random() < 0.15 ? ' ' : chars[Math.floor(random() * chars.length)];
            const json = trainByteLevelBpe(text, 2000);
            assert.deepEqual(json.model.merges, referenceMerges(text, 2000), `text ${JSON.stringify(text)}`);
        }
    });
    it('is deterministic', function () {
        const text = loadSotuText().eval.slice(0, 50000);
        assert.equal(JSON.stringify(trainByteLevelBpe(text, 600)), JSON.stringify(trainByteLevelBpe(text, 600)));
    });
    it('reports progress and rejects vocabularies smaller than the byte alphabet', function () {
        const calls = [];
        trainByteLevelBpe(corpus, 300, { onProgress: (done, total) => calls.push([done, total]) });
        assert.ok(calls.length > 1);
        assert.deepEqual(calls[calls.length - 1], [44, 44]);
        for (let k = 1; k < calls.length; ++k)
            assert.ok(calls[k][0] > calls[k - 1][0]);
        assert.throws(() => trainByteLevelBpe(corpus, 255), InvalidArgumentError);
        assert.throws(() => trainByteLevelBpe(corpus, 300.5), InvalidArgumentError);
    });
    it('encodes SOTU text in fewer tokens than bytes, exactly as rank-order merging does', function () {
        const text = loadSotuText();
        const json = trainByteLevelBpe(text.train, 1024);
        assert.equal(Object.keys(json.model.vocab).length, 1024);
        const tokenizer = new Tokenizer(json, byteLevelBpeTokenizerConfig());
        const ids = tokenizer.encode(text.eval, { add_special_tokens: false }).ids;
        const bytes = Buffer.byteLength(text.eval, 'utf8');
        assert.ok(ids.length < 0.5 * bytes, `${ids.length} tokens for ${bytes} bytes`);
        assert.equal(tokenizer.decode(ids), text.eval);
        const sample = text.eval.slice(0, 100000);
        assert.deepEqual(tokenizer.encode(sample, { add_special_tokens: false }).ids, referenceEncode(json, sample));
    });
});
describe('demo: SVG line chart', function () {
    const spec = {
        title: 'Perplexity after one-shot pruning — a 1,234,567-parameter Llama trained on State-of-the-Union text',
        xLabel: 'sparsity',
        yLabel: 'perplexity (log scale)',
        logY: true,
        series: [
            { name: 'magnitude', points: [[0, 21], [0.5, 40], [0.7, 180], [0.9, 2000]] },
            { name: 'wanda', points: [[0, 21], [0.5, 30], [0.7, 70], [0.9, 900]] },
            { name: 'sparsegpt', points: [[0, 21], [0.5, 27], [0.7, 55], [0.9, 400]] },
        ],
    };
    it('is checked by a well-formedness checker that rejects broken XML', function () {
        parseXml('<?xml version="1.0"?><a x="1" y=\'&amp;&#60;&#x3e;\'><b/>text &lt; <!-- c --><c></c></a>\n');
        for (const bad of ['<a><b></a></b>', '<a x="1" x="2"/>', '<a>&bogus;</a>', '<a>1 < 2</a>', '<a x=1/>', '<a/><b/>', '<a>', 'text<a/>', '<a>\u0001</a>']) {
            assert.throws(() => parseXml(bad), /not well-formed/, bad);
        }
    });
    it('is well-formed XML with one polyline, markers and a legend entry per series', function () {
        const svg = lineChart(spec);
        const root = parseXml(svg);
        assert.equal(root.name, 'svg');
        assert.equal(root.attrs['xmlns'], 'http://www.w3.org/2000/svg');
        const all = descendants(root);
        const groups = all.filter((e) => e.name === 'g' && e.attrs['class'] === 'series');
        assert.equal(groups.length, 3);
        assert.equal(all.filter((e) => e.name === 'polyline').length, 3);
        const colors = new Set();
        groups.forEach((g, k) => {
            const polyline = g.children.find((c) => typeof c !== 'string' && c.name === 'polyline');
            assert.equal(polyline.attrs['points'].trim().split(/\s+/).length, spec.series[k].points.length);
            assert.equal(g.children.filter((c) => typeof c !== 'string' && c.name === 'circle').length, spec.series[k].points.length);
            colors.add(g.attrs['stroke']);
        });
        assert.equal(colors.size, 3, 'series colours must differ');
        const legend = all.find((e) => e.name === 'g' && e.attrs['class'] === 'legend');
        assert.deepEqual(descendants(legend).filter((e) => e.name === 'text').map(textOf), ['magnitude', 'wanda', 'sparsegpt']);
        const labels = all.filter((e) => e.name === 'text').map(textOf);
        assert.ok(labels.includes('sparsity') && labels.includes('perplexity (log scale)'));
    });
    it('puts log-axis ticks at powers of ten, with 2× and 5× where they fit', function () {
        const yTicks = (svg) => {
            const group = descendants(parseXml(svg)).find((e) => e.name === 'g' && e.attrs['class'] === 'y-ticks');
            return descendants(group).filter((e) => e.name === 'text').map(textOf);
        };
        // Perplexities 21..2000 span two decades: room for 2× and 5×.
        assert.deepEqual(yTicks(lineChart(spec)), ['20', '50', '100', '200', '500', '1000', '2000']);
        // Twelve decades in a short chart: powers of ten only.
        const wide = yTicks(lineChart({ ...spec, height: 300, series: [{ name: 'a', points: [[0, 1], [1, 1e12]] }] }));
        assert.ok(wide.length >= 3);
        for (const t of wide)
            assert.match(t, /^1(0*|e\d+)$/, `tick ${t} is not a power of ten`);
        assert.deepEqual(logTicks(Math.log10(20), Math.log10(2000), 100), [20, 50, 100, 200, 500, 1000, 2000]);
        assert.deepEqual(logTicks(0, 12, 20), [1, 10, 100, 1000, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12]);
        // Less than a decade: ordinary ticks rather than one lonely power of ten.
        assert.ok(logTicks(Math.log10(12), Math.log10(30), 300).length >= 3);
    });
    it('skips non-finite points and draws single-point and empty series', function () {
        const svg = lineChart({
            title: 'edge cases',
            xLabel: 'x',
            yLabel: 'y',
            logY: true,
            series: [
                { name: 'gaps', points: [[0, 10], [0.3, NaN], [0.5, Infinity], [0.6, -1], [0.7, 0], [0.9, 100]] },
                { name: 'single', points: [[0.4, 50]] },
                { name: 'empty', points: [] },
            ],
        });
        assert.ok(!/NaN|Infinity/.test(svg));
        const groups = descendants(parseXml(svg)).filter((e) => e.name === 'g' && e.attrs['class'] === 'series');
        const circles = groups.map((g) => g.children.filter((c) => typeof c !== 'string' && c.name === 'circle').length);
        assert.deepEqual(circles, [2, 1, 0]);
        // Nothing to plot at all, or one point alone, still gives a valid chart.
        for (const series of [[], [{ name: 'only', points: [[0.5, 7]] }]]) {
            for (const logY of [false, true]) {
                const only = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', logY, series });
                assert.ok(!/NaN|Infinity/.test(only));
                parseXml(only);
            }
        }
    });
    it('escapes markup in titles, labels and series names', function () {
        const svg = lineChart({
            title: 'a < b & "c" \'d\' </svg>',
            xLabel: '<x>',
            yLabel: 'y & z',
            series: [{ name: '<script>alert(1)</script>\u0001', points: [[1, 2], [2, 3]] }],
        });
        const root = parseXml(svg);
        const texts = descendants(root).filter((e) => e.name === 'text').map(textOf);
        assert.ok(texts.some((t) => t.includes('a < b & "c"')));
        assert.ok(texts.includes('<x>') && texts.includes('y & z') && texts.includes('<script>alert(1)</script>'));
        assert.equal(descendants(root).filter((e) => e.name === 'script').length, 0);
    });
});
//# sourceMappingURL=demo-pieces.test.js.map