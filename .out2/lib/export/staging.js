// Where every command that writes a folder (prune, quantize, train, export) puts its output, and how.
//
// - The output may not be the input, lie inside it, or contain it (an --out that is a parent of the model
//   would be replaced, model and all, by --overwrite). Real paths are compared, so symlinks do not get
//   around the check.
// - The folder is built in a staging folder beside the target and renamed into place only when
//   complete; an interrupted run never leaves a half-written folder where the user asked for one.
// - A resumable run keeps its staging folder (`.<name>.sparq-partial`) with a progress file; a lock file
//   in it (pid + host) keeps a second run on the same --out from resuming or deleting a live run's work.
// - File-system failures (disk full, permissions) become a WriteFailedError naming the file being
//   written and saying what was left where.
import { hostname } from 'node:os';
import { lstat, mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { InvalidArgumentError, writeFailure } from '../errors.js';
const LOCK_FILE = 'sparq.lock';
const PROGRESS_FILE = 'sparq-progress.json';
async function exists(path) {
    return lstat(path).then(() => true, () => false);
}
/** The real path of `path`, which need not exist: its deepest existing ancestor resolved, the rest appended. */
async function realPathOf(path) {
    const absolute = resolve(path);
    let existing = absolute;
    const rest = [];
    for (;;) {
        try {
            return join(await realpath(existing), ...rest);
        }
        catch {
            const parent = dirname(existing);
            if (parent === existing)
                return absolute;
            rest.unshift(basename(existing));
            existing = parent;
        }
    }
}
const isWithin = (inner, outer) => inner === outer || inner.startsWith(outer.endsWith(sep) ? outer : outer + sep);
/**
 * Refuses an output folder that is an input folder, lies inside one, or contains one, and one whose
 * parent folder does not exist. `flag` names the option in messages.
 */
export async function checkOutputLocation(target, inputs, flag = '--out') {
    const out = await realPathOf(target);
    for (const input of inputs) {
        const source = await realPathOf(input);
        if (out === source)
            throw new InvalidArgumentError(`${flag} ${target} is the input folder ${input}; write the output to a new folder`);
        if (isWithin(out, source))
            throw new InvalidArgumentError(`${flag} ${target} is inside the input folder ${input}; choose a folder outside it`);
        if (isWithin(source, out)) {
            throw new InvalidArgumentError(`${flag} ${target} contains the input folder ${input}; replacing it would delete the input. Choose a folder beside it`);
        }
    }
    const parent = dirname(resolve(target));
    const parentStat = await stat(parent).catch(() => undefined);
    if (!parentStat)
        throw new InvalidArgumentError(`${flag} ${target}: its parent folder ${parent} does not exist; create it first`);
    if (!parentStat.isDirectory())
        throw new InvalidArgumentError(`${flag} ${target}: ${parent} is not a folder`);
}
function processIsAlive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    }
    catch (error) {
        return error.code === 'EPERM';
    }
}
/**
 * A staging folder beside an output target. `open` checks the location, takes the lock, and either
 * resumes a partial run (returning its saved progress) or starts a fresh folder.
 */
export class StagingFolder {
    target;
    path;
    overwrite;
    resumable;
    resumed;
    locked = true;
    constructor(target, path, overwrite, resumable, 
    /** The progress saved by the interrupted run being resumed, if any. */
    resumed) {
        this.target = target;
        this.path = path;
        this.overwrite = overwrite;
        this.resumable = resumable;
        this.resumed = resumed;
    }
    /** The stable staging folder of a resumable target (so that --resume finds it). */
    static resumablePath(target) {
        return join(dirname(resolve(target)), `.${basename(resolve(target))}.sparq-partial`);
    }
    /**
     * Prepares the staging folder. `resume` (resumable runs only) continues a partial run whose saved
     * progress `matches`; `overwrite` replaces an existing target or a partial run that cannot be resumed.
     */
    static async open(options) {
        const { target, overwrite = false } = options;
        await checkOutputLocation(target, options.inputs);
        if ((await exists(target)) && !overwrite)
            throw new InvalidArgumentError(`output folder ${target} already exists (pass --overwrite to replace it)`);
        const path = options.resumable ? StagingFolder.resumablePath(target) : join(dirname(resolve(target)), `.${basename(resolve(target))}.partial-${process.pid}-${Date.now()}`);
        const guard = (work) => guarded(path, `nothing was written to ${target}`, work);
        if (options.resumable && (await exists(path))) {
            await acquireLock(path, target);
            let state;
            let problem;
            try {
                state = JSON.parse(await readFile(join(path, PROGRESS_FILE), 'utf8'));
            }
            catch (error) {
                problem = error.code === 'ENOENT' ? 'its progress file is missing' : 'its progress file is corrupt';
            }
            if (options.resume && state !== undefined && (options.matches?.(state) ?? true)) {
                return new StagingFolder(target, path, overwrite, true, state);
            }
            if (!overwrite) {
                await releaseLock(path);
                if (!options.resume)
                    throw new InvalidArgumentError(`an interrupted run is kept at ${path}: pass --resume to continue it, or --overwrite to start over`);
                if (problem)
                    throw new InvalidArgumentError(`the interrupted run at ${path} cannot be resumed: ${problem}. Pass --overwrite to start over`);
                throw new InvalidArgumentError(`the interrupted run at ${path} used a different model, recipe or calibration; it cannot be resumed with these options (pass --overwrite to start over)`);
            }
            await guard(() => rm(path, { recursive: true, force: true }));
        }
        else if (options.resume && options.resumable) {
            throw new InvalidArgumentError(`--resume: there is no interrupted run for ${target} (expected ${path})`);
        }
        try {
            await guard(() => mkdir(path));
        }
        catch (error) {
            if (error.cause?.code === 'EEXIST') {
                throw new InvalidArgumentError(`another sparq run started writing ${target} at the same moment (${path} appeared); wait for it to finish`);
            }
            throw error;
        }
        await acquireLock(path, target);
        return new StagingFolder(target, path, overwrite, options.resumable, undefined);
    }
    /** A path inside the staging folder. */
    file(relativePath) {
        return join(this.path, relativePath);
    }
    /**
     * Runs a file-system step, turning its failure into a WriteFailedError that names `file` and says what
     * was kept (for a resumable run: the staging folder, to --resume after fixing the cause, unless
     * `keptForResume` is false because the caller discards it).
     */
    guard(file, work, options = {}) {
        const kept = this.resumable && options.keptForResume !== false
            ? `nothing was written to ${this.target}; the finished part is kept at ${this.path} (--resume continues after fixing the cause, or delete it)`
            : `nothing was written to ${this.target}`;
        return guarded(file, kept, work);
    }
    /** Saves a resumable run's progress atomically. */
    async saveProgress(state) {
        const path = this.file(PROGRESS_FILE);
        await this.guard(path, async () => {
            await writeFile(`${path}.tmp`, JSON.stringify(state));
            await rename(`${path}.tmp`, path);
        });
    }
    /** Renames the finished folder into place (replacing an existing target only with overwrite). */
    async commit() {
        await rm(this.file(PROGRESS_FILE), { force: true });
        const out = resolve(this.target);
        const previous = `${this.path}.previous`;
        const replace = await exists(out);
        if (replace && !this.overwrite)
            throw new InvalidArgumentError(`output folder ${this.target} appeared during the run; not replacing it without --overwrite`);
        await releaseLock(this.path);
        this.locked = false;
        // Move the old folder aside first, so there is no moment without a complete folder at the target.
        await this.guard(out, async () => {
            if (replace)
                await rename(out, previous);
            await rename(this.path, out);
            if (replace)
                await rm(previous, { recursive: true, force: true });
        });
    }
    /**
     * Ends a run that did not commit: a resumable run keeps its folder for --resume and gives up the lock;
     * any other run's folder is removed.
     */
    async close() {
        if (!this.locked)
            return;
        if (this.resumable) {
            this.locked = false;
            await releaseLock(this.path);
        }
        else {
            await this.discard();
        }
    }
    /** Removes the staging folder (a run that has nothing worth resuming). */
    async discard() {
        this.locked = false;
        await rm(this.path, { recursive: true, force: true });
    }
}
async function guarded(file, kept, work) {
    try {
        return await work();
    }
    catch (error) {
        throw writeFailure(file, error, kept);
    }
}
async function acquireLock(staging, target) {
    const path = join(staging, LOCK_FILE);
    const me = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
    for (let attempt = 0; attempt < 2; ++attempt) {
        try {
            await writeFile(path, JSON.stringify(me), { flag: 'wx' });
            return;
        }
        catch (error) {
            if (error.code !== 'EEXIST') {
                throw writeFailure(path, error, `nothing was written to ${target}`);
            }
        }
        let holder;
        try {
            holder = JSON.parse(await readFile(path, 'utf8'));
        }
        catch {
            holder = undefined; // an unreadable lock is a crashed writer's; take it over
        }
        if (holder && typeof holder.pid === 'number') {
            const sameHost = holder.host === hostname();
            if (!sameHost || processIsAlive(holder.pid)) {
                throw new InvalidArgumentError(`another sparq run (pid ${holder.pid} on ${holder.host}, started ${holder.started}) is writing ${target} in ${staging}; ` +
                    `wait for it to finish${sameHost ? '' : `, or delete ${path} if that run is gone`}`);
            }
        }
        await rm(path, { force: true }); // stale: its process is gone
    }
    throw new InvalidArgumentError(`cannot take the lock ${path} for ${target}; another run keeps taking it`);
}
async function releaseLock(staging) {
    await rm(join(staging, LOCK_FILE), { force: true });
}
/** `file` relative to `root`, refusing a result that leaves it (a logical path, symlinks not followed). */
export function insideFolder(root, file) {
    const relativePath = relative(resolve(root), resolve(file));
    if (relativePath === '' || relativePath.startsWith('..') || resolve(root, relativePath) !== resolve(file)) {
        throw new InvalidArgumentError(`${file} is not inside ${root}`);
    }
    return relativePath;
}
//# sourceMappingURL=staging.js.map