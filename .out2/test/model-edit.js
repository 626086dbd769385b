// Builds broken or altered copies of the shared fixtures for tests: a changed config, tensors dropped,
// added, replaced or poisoned, written as a real model folder.
import { cpSync, chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, SafetensorsWriter } from '../lib/index.js';
/** Copies a model folder to `out` (files made writable) and applies the edit to config.json and model.safetensors. */
export async function editModel(source, out, edit = {}) {
    cpSync(source, out, { recursive: true });
    for (const f of readdirSync(out))
        chmodSync(join(out, f), 0o644);
    chmodSync(out, 0o755);
    if (edit.config) {
        const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
        for (const [k, v] of Object.entries(edit.config)) {
            if (v === undefined)
                delete config[k];
            else
                config[k] = v;
        }
        writeFileSync(join(out, 'config.json'), JSON.stringify(config, null, 2));
    }
    if (edit.tensor || edit.add) {
        const path = join(out, 'model.safetensors');
        const file = await SafetensorsFile.open(path);
        const tensors = [];
        try {
            for (const name of file.names()) {
                const value = await file.read(name);
                const replaced = edit.tensor?.(name, value);
                if (replaced === null)
                    continue;
                tensors.push([name, replaced ?? value]);
            }
        }
        finally {
            await file.close();
        }
        for (const [name, value] of Object.entries(edit.add ?? {}))
            tensors.push([name, value]);
        const plan = tensors.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape }));
        const writer = await SafetensorsWriter.create(path, plan);
        for (const [name, t] of tensors)
            await writer.write(name, t);
        await writer.close();
    }
    return out;
}
/** A copy of `t` (f32) with element `index` set to `value`. */
export function poisoned(t, index, value) {
    const copy = t.to('f32').clone();
    copy.data[index] = value;
    return copy.to(t.dtype);
}
//# sourceMappingURL=model-edit.js.map