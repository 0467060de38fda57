// Writes deploy/crds from the zod schemas. Build first (`npm run build`), then from the repository root:
//   node dist/hack/gen-crds.js [output-directory]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { renderCrdYaml } from '../src/crds/crd.js';

const outputDirectory = process.argv[2] ?? join(process.cwd(), 'deploy', 'crds');
mkdirSync(outputDirectory, { recursive: true });
for (const [fileName, content] of Object.entries(renderCrdYaml())) {
  writeFileSync(join(outputDirectory, fileName), content);
  console.log(`wrote ${join(outputDirectory, fileName)}`);
}
