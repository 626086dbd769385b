import { parseArgs } from 'node:util';
import { backendInfo, isAvailable, loadAttempts } from '../../tensor/native.js';
import { sparqVersion } from '../../version.js';
import { parseFlags } from '../command.js';
export const infoCommand = {
    name: 'info',
    usage: `info [--json]    the native backends: kernels, threads, and why a backend did not load`,
    async run(args) {
        const { values } = parseFlags('info', () => parseArgs({ args, strict: true, options: { json: { type: 'boolean', default: false } } }));
        const cpu = backendInfo('cpu');
        const cuda = isAvailable('cuda') ? backendInfo('cuda') : null;
        const report = { version: sparqVersion(), cpu, cuda, loadAttempts: loadAttempts() };
        if (values.json) {
            process.stdout.write(`${JSON.stringify(report)}\n`);
            return;
        }
        process.stdout.write(`sparq ${report.version}\n`);
        process.stdout.write(`${cpu.description} (variants: ${cpu.kernelVariants.join(', ')})\n`);
        if (cuda) {
            process.stdout.write(`cuda: ${cuda.description}\n`);
        }
        else {
            const why = loadAttempts().filter((a) => a.backend === 'cuda' && !a.ok);
            process.stdout.write(`cuda: unavailable${why.map((a) => ` (${a.error}; ${a.fix})`).join('')}\n`);
        }
    },
};
//# sourceMappingURL=info.js.map