import { readFileSync, readlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import { parse } from 'yaml';

import { DEFAULT_CHANNEL_TABLE } from '../../../src/controllers/common/versions.js';
import { CHART_DIR, chartValues, CRD_FILES, DEPLOY_DIR, REPO_ROOT } from './manifests.js';

const values = chartValues();

// What the chart renders is tested with a real helm in test/integration/chart.test.ts; these are the
// checks that need no rendering.
describe('the Helm chart files', () => {
  it('ships the built-in channel table', () => {
    expect(values['channels']).toEqual({ ...DEFAULT_CHANNEL_TABLE });
  });

  it('versions the chart and its app like the package', () => {
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as Record<string, string>;
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect({ version: chart['version'], appVersion: chart['appVersion'] }).toEqual({
      version: pkg.version,
      appVersion: `v${pkg.version}`,
    });
  });

  it('installs the CRDs and the ClusterRoles from the very files kustomize applies', () => {
    const linked = [...CRD_FILES, 'clusterrole.yaml', 'istiod-clusterroles.yaml'].map((file) => ({
      chart: join(CHART_DIR, file.startsWith('crds/') ? file : join('files', file)),
      deploy: join(DEPLOY_DIR, file),
    }));
    for (const { chart, deploy } of linked) {
      expect(resolve(dirname(chart), readlinkSync(chart))).toBe(deploy);
    }
  });
});
