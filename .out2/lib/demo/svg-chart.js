// A small, dependency-free line chart rendered as a standalone SVG document.
//
// Axes get "nice" ticks (1, 2, 5 × 10^k steps); a logarithmic y axis gets ticks at powers of ten, plus 2× and
// 5× when they are far enough apart, or plain nice ticks when the data spans less than a decade. Points whose
// coordinates are not finite (or, on a log axis, not positive) are skipped. Every series gets exactly one
// <polyline> (empty for an empty series), a circle per point and a legend entry.
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
/** Colour of series `i`: a fixed palette, then hues spread by the golden angle. */
export function seriesColor(i) {
    if (i < PALETTE.length)
        return PALETTE[i];
    const hue = Math.round((i * 137.508) % 360);
    return `hsl(${hue}, 65%, 42%)`;
}
/** Escapes text for XML character data and attribute values; drops characters XML 1.0 cannot hold. */
export function escapeXml(text) {
    let out = '';
    for (const ch of String(text)) {
        const c = ch.codePointAt(0);
        if (ch === '&')
            out += '&amp;';
        else if (ch === '<')
            out += '&lt;';
        else if (ch === '>')
            out += '&gt;';
        else if (ch === '"')
            out += '&quot;';
        else if (ch === "'")
            out += '&apos;';
        else if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || (c >= 0xd800 && c <= 0xdfff) || c === 0xfffe || c === 0xffff)
            continue;
        else
            out += ch;
    }
    return out;
}
/** Numbers in attributes: two decimals at most, no "-0". */
function num(v) {
    const r = Math.round(v * 100) / 100;
    return Object.is(r, -0) ? '0' : String(r);
}
/** Step of about `span / target` rounded to 1, 2 or 5 × 10^k. */
function niceStep(span, target) {
    const raw = span / Math.max(1, target);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / power;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * power;
}
/** Ticks that are multiples of a nice step inside [lo, hi]. */
function linearTicks(lo, hi, target) {
    const step = niceStep(hi - lo, target);
    const ticks = [];
    const first = Math.ceil(lo / step - 1e-9);
    for (let k = first; k * step <= hi + step * 1e-9; ++k)
        ticks.push(cleanNumber(k * step));
    return ticks;
}
/** Removes floating-point noise (0.30000000000000004 → 0.3). */
function cleanNumber(v) {
    return v === 0 ? 0 : Number(v.toPrecision(12));
}
/**
 * Tick values for a log axis over [10^lo, 10^hi] (lo, hi in log10 units) drawn `pxPerDecade` pixels per
 * decade: powers of ten (every k-th when they crowd), 2× and 5× as well when they are at least `minGap`
 * pixels apart, and linear nice ticks when fewer than two of those fall inside the range.
 */
export function logTicks(lo, hi, pxPerDecade, minGap = 18) {
    const inside = (v) => {
        const l = Math.log10(v);
        return l >= lo - 1e-9 && l <= hi + 1e-9;
    };
    const mantissas = Math.log10(2) * pxPerDecade >= minGap ? [1, 2, 5] : [1];
    const decadeStep = Math.max(1, Math.ceil(minGap / Math.max(pxPerDecade, 1e-9)));
    const ticks = [];
    for (let e = Math.floor(lo); e <= Math.ceil(hi); ++e) {
        if (mantissas.length === 1 && ((e % decadeStep) + decadeStep) % decadeStep !== 0)
            continue;
        for (const m of mantissas) {
            const v = cleanNumber(m * Math.pow(10, e));
            if (inside(v))
                ticks.push(v);
        }
    }
    if (ticks.length >= 2)
        return ticks;
    const target = Math.max(2, Math.floor(((hi - lo) * pxPerDecade) / (minGap * 2)));
    const linear = linearTicks(Math.pow(10, lo), Math.pow(10, hi), target).filter((v) => v > 0);
    return linear.length > 0 ? linear : ticks;
}
/** Short tick label: plain decimals for ordinary magnitudes, 1e6 / 2e-4 style otherwise. */
export function formatTick(v) {
    if (v === 0)
        return '0';
    const a = Math.abs(v);
    if (a >= 1e6 || a < 1e-3) {
        const [mantissa, exponent] = v.toExponential().split('e');
        return `${cleanNumber(Number(mantissa))}e${Number(exponent)}`;
    }
    return String(cleanNumber(v));
}
/** Splits `text` into lines of at most `maxChars` characters, at spaces where possible. */
function wrap(text, maxChars) {
    const words = text.split(/\s+/).filter((w) => w.length > 0);
    const lines = [];
    let line = '';
    for (const word of words) {
        if (line.length === 0)
            line = word;
        else if (line.length + 1 + word.length <= maxChars)
            line += ` ${word}`;
        else {
            lines.push(line);
            line = word;
        }
    }
    if (line.length > 0 || lines.length === 0)
        lines.push(line);
    return lines;
}
/** Renders the chart as a complete SVG document (UTF-8 text, starting with the XML declaration). */
export function lineChart(spec) {
    const width = Math.max(240, Math.round(spec.width ?? 760));
    const height = Math.max(180, Math.round(spec.height ?? 460));
    const logY = spec.logY ?? false;
    const series = spec.series.map((s, i) => ({
        name: String(s.name),
        color: seriesColor(i),
        points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)),
    }));
    // Data ranges (y in log10 units on a log axis), padded so markers clear the frame.
    const xs = series.flatMap((s) => s.points.map((p) => p[0]));
    const ys = series.flatMap((s) => s.points.map((p) => (logY ? Math.log10(p[1]) : p[1])));
    const range = (values, pad, decades) => {
        if (values.length === 0)
            return [0, 1];
        let lo = Math.min(...values);
        let hi = Math.max(...values);
        if (hi - lo < 1e-12 * Math.max(1, Math.abs(lo))) {
            // A single value: half a decade either side on a log axis, else ±10% (at least ±0.5).
            const half = decades ? 0.5 : Math.max(Math.abs(lo) * 0.1, 0.5);
            lo -= half;
            hi += half;
        }
        const margin = (hi - lo) * pad;
        return [lo - margin, hi + margin];
    };
    const [x0, x1] = range(xs, 0.04, false);
    const [y0, y1] = range(ys, 0.06, logY);
    // Layout: title on top (wrapped), legend on the right, axis labels left and bottom.
    const titleSize = 15;
    const titleLines = wrap(spec.title, Math.max(20, Math.floor((width - 40) / (titleSize * 0.55))));
    const legendChars = Math.max(0, ...series.map((s) => s.name.length));
    const legendWidth = series.length > 0 ? Math.min(width * 0.35, 34 + legendChars * 7) : 0;
    const left = 78;
    const right = 20 + legendWidth;
    const top = 18 + titleLines.length * (titleSize + 5);
    const bottom = 58;
    const plotW = Math.max(40, width - left - right);
    const plotH = Math.max(40, height - top - bottom);
    const px = (x) => left + ((x - x0) / (x1 - x0)) * plotW;
    const py = (y) => top + plotH - (((logY ? Math.log10(y) : y) - y0) / (y1 - y0)) * plotH;
    const xTicks = linearTicks(x0, x1, Math.max(2, Math.floor(plotW / 70)));
    const yTicks = logY ? logTicks(y0, y1, plotH / (y1 - y0)) : linearTicks(y0, y1, Math.max(2, Math.floor(plotH / 45)));
    const out = [];
    out.push('<?xml version="1.0" encoding="UTF-8"?>');
    out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
    out.push(`<title>${escapeXml(spec.title)}</title>`);
    out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
    titleLines.forEach((line, i) => {
        out.push(`<text x="${num(width / 2)}" y="${num(14 + titleSize + i * (titleSize + 5) - 4)}" text-anchor="middle" font-size="${titleSize}" font-weight="bold">${escapeXml(line)}</text>`);
    });
    // Grid and ticks.
    out.push('<g class="grid" stroke="#e3e3e3" stroke-width="1">');
    for (const t of xTicks)
        out.push(`<line x1="${num(px(t))}" y1="${num(top)}" x2="${num(px(t))}" y2="${num(top + plotH)}"/>`);
    for (const t of yTicks)
        out.push(`<line x1="${num(left)}" y1="${num(py(t))}" x2="${num(left + plotW)}" y2="${num(py(t))}"/>`);
    out.push('</g>');
    out.push(`<rect x="${num(left)}" y="${num(top)}" width="${num(plotW)}" height="${num(plotH)}" fill="none" stroke="#333333" stroke-width="1"/>`);
    out.push('<g class="x-ticks" text-anchor="middle" fill="#333333">');
    for (const t of xTicks) {
        const x = num(px(t));
        out.push(`<line x1="${x}" y1="${num(top + plotH)}" x2="${x}" y2="${num(top + plotH + 5)}" stroke="#333333"/>`);
        out.push(`<text x="${x}" y="${num(top + plotH + 18)}">${escapeXml(formatTick(t))}</text>`);
    }
    out.push('</g>');
    out.push('<g class="y-ticks" text-anchor="end" fill="#333333">');
    for (const t of yTicks) {
        const y = num(py(t));
        out.push(`<line x1="${num(left - 5)}" y1="${y}" x2="${num(left)}" y2="${y}" stroke="#333333"/>`);
        out.push(`<text x="${num(left - 8)}" y="${y}" dy="0.35em">${escapeXml(formatTick(t))}</text>`);
    }
    out.push('</g>');
    out.push(`<text class="x-label" x="${num(left + plotW / 2)}" y="${num(height - 14)}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
    out.push(`<text class="y-label" x="0" y="0" transform="translate(${num(18)} ${num(top + plotH / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`);
    // Series: one polyline each, markers with tooltips.
    for (const s of series) {
        const points = s.points.map(([x, y]) => `${num(px(x))},${num(py(y))}`).join(' ');
        out.push(`<g class="series" fill="${s.color}" stroke="${s.color}">`);
        out.push(`<polyline points="${points}" fill="none" stroke-width="2" stroke-linejoin="round"/>`);
        for (const [x, y] of s.points) {
            out.push(`<circle cx="${num(px(x))}" cy="${num(py(y))}" r="3.5" stroke="#ffffff" stroke-width="1"><title>${escapeXml(`${s.name}: (${formatTick(x)}, ${formatTick(y)})`)}</title></circle>`);
        }
        out.push('</g>');
    }
    // Legend.
    if (series.length > 0) {
        const lx = left + plotW + 16;
        out.push('<g class="legend">');
        series.forEach((s, i) => {
            const y = top + 10 + i * 20;
            out.push(`<line x1="${num(lx)}" y1="${num(y)}" x2="${num(lx + 20)}" y2="${num(y)}" stroke="${s.color}" stroke-width="2"/>`);
            out.push(`<circle cx="${num(lx + 10)}" cy="${num(y)}" r="3.5" fill="${s.color}"/>`);
            out.push(`<text x="${num(lx + 26)}" y="${num(y)}" dy="0.35em">${escapeXml(s.name)}</text>`);
        });
        out.push('</g>');
    }
    out.push('</svg>');
    return `${out.join('\n')}\n`;
}
//# sourceMappingURL=svg-chart.js.map