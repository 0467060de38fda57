// `make bench`: runs the injection, reconcile and scale benchmarks (or the ones named on the command line),
// prints the table and writes bench/results/<date>-<commit>.{json,md}, bench/results/latest.md and the table in
// bench/README.md. `--quick` (or BENCH_QUICK=1) shortens every phase for a smoke run; those results are
// written under bench/results/quick/ so they never replace a full run's files.
import { getHeapStatistics } from 'node:v8';

import { loadText, log, machineInfo, reportMarkdown, writeResults, type SectionResult } from './common.js';
import { injectionOptionsFromEnv, runInjectionBench } from './injection.js';
import { reconcileOptionsFromEnv, runReconcileBench } from './reconcile.js';
import { runScaleBench, scaleOptionsFromEnv } from './scale.js';
import { OPERATOR_NODE_FLAGS } from '../src/cli/node-flags.js';

const SUITES = ['injection', 'reconcile', 'scale'] as const;
type Suite = (typeof SUITES)[number];

async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick') || process.env.BENCH_QUICK === '1';
  const named = argv.filter((a) => !a.startsWith('--'));
  for (const name of named) {
    if (!(SUITES as readonly string[]).includes(name)) {
      console.error(`usage: node dist/bench/run.js [--quick] [${SUITES.join('|')}]…`);
      return 2;
    }
  }
  const selected: Suite[] = named.length === 0 ? [...SUITES] : (named as Suite[]);
  const machine = machineInfo();
  const settings: Record<string, string> = {
    mode: quick ? 'quick (shortened phases: a smoke run, not the reference)' : 'full',
    suites: selected.join(', '),
    'load average at start (1/5/15 min)': loadText(),
    'GC exposed (--expose-gc)': (globalThis as { gc?: unknown }).gc === undefined ? 'no' : 'yes',
    // The injection suite's servers run in this process, so it should carry the operator's flags (`make bench` does).
    'Node flags of the benchmark process': process.execArgv.join(' ') || '(none)',
    // Node sizes V8's heap from the machine's memory, or from a container's memory limit (the Deployment's 512 MiB
    // gives a 128 MiB old generation); how far RSS climbs under load follows this limit (docs/performance.md).
    'V8 heap limit of the benchmark process': `${(getHeapStatistics().heap_size_limit / 2 ** 20).toFixed(0)} MiB`,
    "operator's V8 flags given to it": OPERATOR_NODE_FLAGS.every((f) => process.execArgv.includes(f))
      ? 'yes'
      : `no (run via make bench for ${OPERATOR_NODE_FLAGS.join(' ')})`,
  };
  const sections: SectionResult[] = [];
  const failures: string[] = [];
  for (const suite of selected) {
    log(`=== ${suite} ===`);
    const started = Date.now();
    try {
      if (suite === 'injection') {
        const o = injectionOptionsFromEnv(quick);
        settings.injection = `latency ${o.latencySeconds} s/run in 3 alternating rounds (at least 500 requests each), throughput ${o.throughputSeconds} s/run, ${o.connections} connections, soak ${o.soakSeconds} s at ${o.soakRate} req/s`;
        sections.push(await runInjectionBench(o));
      } else if (suite === 'reconcile') {
        const o = reconcileOptionsFromEnv(quick);
        settings.reconcile = `${o.sequential} sequential applies, ${o.burst} at once, steady state ${o.steadySeconds} s`;
        sections.push(await runReconcileBench(o));
      } else {
        const o = scaleOptionsFromEnv(quick);
        settings.scale = `${o.namespaces} namespaces, ${o.pods} pods, ${o.revisions} revisions, ${o.relabels} relabels`;
        sections.push(await runScaleBench(o));
      }
      settings[`load average after ${suite}`] = loadText();
      log(`=== ${suite} done in ${((Date.now() - started) / 1000).toFixed(0)} s ===`);
    } catch (err) {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      log(`=== ${suite} FAILED: ${message}`);
      failures.push(`${suite}: ${message.split('\n')[0]}`);
    }
  }
  settings['load average at end (1/5/15 min)'] = loadText();
  if (sections.length > 0) {
    console.log(reportMarkdown(machine, sections, settings));
    const files = await writeResults(machine, sections, settings, quick ? 'quick' : undefined);
    log(`results: ${files.json}, ${files.md}`);
  }
  if (failures.length > 0) {
    console.error(`benchmarks that could not run:\n${failures.join('\n')}`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
