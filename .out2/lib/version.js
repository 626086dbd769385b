// sparq's version, read from the package manifest above this module (dist/ or the tests' .out/lib/).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
let cached;
export function sparqVersion() {
    if (cached !== undefined)
        return cached;
    let dir = dirname(fileURLToPath(import.meta.url));
    for (;;) {
        const manifest = join(dir, 'package.json');
        if (existsSync(manifest)) {
            const parsed = JSON.parse(readFileSync(manifest, 'utf8'));
            if (parsed.name === 'sparq' && parsed.version)
                return (cached = parsed.version);
        }
        const parent = dirname(dir);
        if (parent === dir)
            return (cached = 'unknown');
        dir = parent;
    }
}
//# sourceMappingURL=version.js.map