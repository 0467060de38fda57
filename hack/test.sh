#!/usr/bin/env bash
# `make test`: unit tests and the conformance suite in parallel workers, then the integration and
# end-to-end suites one file at a time against one real local control plane (they share the
# cluster-scoped CRDs and the injector's Service, so they must not overlap). Both always run; the exit
# code is non-zero if either failed. With RESULTS_DIR set, each writes jest's JSON results there.
set -uo pipefail
cd "$(dirname "$0")/.."
NODE=node_modules/.bin/node
JEST=(node_modules/.bin/node --experimental-vm-modules node_modules/jest/bin/jest.js)
json() { [ -n "${RESULTS_DIR:-}" ] && echo "--json --outputFile=$RESULTS_DIR/$1.json"; }

rc=0
# shellcheck disable=SC2046
"${JEST[@]}" --selectProjects unit $(json unit) "$@" || rc=1
# shellcheck disable=SC2046
"${JEST[@]}" --selectProjects integration --runInBand $(json integration) "$@" || rc=1
exit "$rc"
