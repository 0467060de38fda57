// Run after `npm install` changes the lock file: node hack/fix-lock.cjs package-lock.json
// (the registry reachable here serves only this platform's builds of some optional packages, and npm
// then leaves them out of the lock file, which makes `npm ci` refuse it).
// Adds package-lock.json entries for optional platform packages the local registry does not serve, so `npm ci`
// accepts the lock file; npm skips them on platforms they do not support.
const fs = require('fs');
const file = process.argv[2];
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const [path, entry] of Object.entries(pkgs)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies || {})) {
    const base = path === '' ? '' : path + '/';
    const candidates = [`${base}node_modules/${name}`, `node_modules/${name}`];
    if (candidates.some((c) => pkgs[c])) continue;
    const m = /resolver-binding-(android|darwin|freebsd|linux|openharmony|win32|wasm32)-?([a-z0-9]+)?/.exec(
      name,
    );
    pkgs[`node_modules/${name}`] = {
      version: String(version).replace(/^[\^~]/, ''),
      optional: true,
      ...(m
        ? { os: [m[1] === 'win32' ? 'win32' : m[1]], cpu: m[2] ? [m[2].replace('eabi', '')] : undefined }
        : {}),
    };
    added++;
  }
}
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log('added', added);
