export function progressBar(label, stream = process.stderr) {
    const started = performance.now();
    let lastTenth = -1;
    let drawn = false;
    return {
        update(step, steps, stage) {
            const fraction = steps > 0 ? step / steps : 1;
            const elapsed = (performance.now() - started) / 1000;
            const eta = fraction > 0 ? (elapsed / fraction) * (1 - fraction) : 0;
            const width = 24;
            const filled = Math.round(fraction * width);
            const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${step}/${steps} ${stage} ${elapsed.toFixed(1)}s, eta ${eta.toFixed(1)}s`;
            if (stream.isTTY) {
                stream.write(`\r${line}\x1b[K`);
                drawn = true;
            }
            else if (Math.floor(fraction * 10) > lastTenth) {
                lastTenth = Math.floor(fraction * 10);
                stream.write(`${line}\n`);
            }
        },
        done() {
            if (drawn)
                stream.write('\n');
        },
    };
}
//# sourceMappingURL=progress.js.map