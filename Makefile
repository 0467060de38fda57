# meshrev — kubebuilder-style targets. Every Node command runs on the Node 24 pinned in
# devDependencies (node_modules/.bin/node), not on the machine's own node.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
NODE := $(CURDIR)/node_modules/.bin/node
JEST := $(NODE) --experimental-vm-modules node_modules/jest/bin/jest.js
# The V8 flags the operator process runs with everywhere (src/cli/node-flags.ts; a unit test keeps them equal).
OPERATOR_NODE_FLAGS := --max-semi-space-size=4 --v8-pool-size=1
CLUSTER_DIR ?= $(CURDIR)/.cluster
KUBECONFIG ?= $(CLUSTER_DIR)/kubeconfig
# The kubectl built with the local control plane (same version as the server; evaluated only when used).
KUBECTL = $(shell bash hack/build-k8s.sh 2>/dev/null | tail -1)/kubectl

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund || npm install --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: node_modules/.package-lock.json ## Install npm dependencies (npm ci)

.PHONY: build
build: deps ## Compile TypeScript to dist/
	$(NODE) node_modules/typescript/bin/tsc -p tsconfig.build.json

.PHONY: k8s-binaries
k8s-binaries: ## Build (or reuse cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok
	@bash hack/build-k8s.sh >/dev/null

.PHONY: generate
generate: build ## Regenerate deploy/crds from the zod API types
	$(NODE) dist/hack/gen-crds.js

.PHONY: lint
lint: deps ## Type-check, eslint and prettier
	$(NODE) node_modules/typescript/bin/tsc -p tsconfig.json --noEmit
	$(NODE) node_modules/eslint/bin/eslint.js .
	$(NODE) node_modules/prettier/bin/prettier.cjs --check .

.PHONY: test-unit
test-unit: deps ## Unit tests and the Istio conformance suite (no cluster)
	$(JEST) --selectProjects unit

.PHONY: test-integration
test-integration: build k8s-binaries ## Integration and e2e tests on a real local control plane
	$(JEST) --selectProjects integration --runInBand

.PHONY: test
test: build k8s-binaries ## All tests: unit, conformance, integration, e2e
	bash hack/test.sh $(JEST_ARGS)

.PHONY: cluster-up
cluster-up: build k8s-binaries ## Start (or reuse) the local control plane; kubeconfig in .cluster/kubeconfig
	$(NODE) dist/hack/cluster/main.js up $(CLUSTER_DIR)

.PHONY: cluster-down
cluster-down: ## Stop the local control plane started by cluster-up and remove its state
	@if [ -f dist/hack/cluster/main.js ]; then $(NODE) dist/hack/cluster/main.js down $(CLUSTER_DIR); else echo "nothing built"; fi

.PHONY: install
install: ## Install the CRDs into the cluster $KUBECONFIG points at
	$(KUBECTL) --kubeconfig $(KUBECONFIG) apply --server-side -f deploy/crds/

.PHONY: run
run: build install ## Run the operator from source against $KUBECONFIG (default: the local cluster)
	KUBECONFIG=$(KUBECONFIG) $(NODE) $(OPERATOR_NODE_FLAGS) dist/src/cli/main.js operator --dev-webhook-routing $(RUN_ARGS)

.PHONY: demo
demo: build k8s-binaries ## The canary-upgrade walkthrough on the local cluster
	$(NODE) dist/hack/demo.js

.PHONY: bench
bench: build k8s-binaries ## Benchmarks (BENCH_ARGS="--quick injection" for a subset); results under bench/results/
	$(NODE) --expose-gc $(OPERATOR_NODE_FLAGS) dist/bench/run.js $(BENCH_ARGS)

.PHONY: differential
differential: build ## Compare the custom templates' Go template and regexp engines with Go's own on random cases (needs Go)
	cd hack/differential && go build -o $(CURDIR)/dist/differential-go .
	$(NODE) dist/hack/differential/regexp.js dist/differential-go $(DIFFERENTIAL_ARGS)
	$(NODE) dist/hack/differential/template.js dist/differential-go $(DIFFERENTIAL_ARGS)

.PHONY: template-parity
template-parity: build ## Render the corpus with Istio's own templates as custom templates and compare with the built-in ones (ISTIO_FILES=<istio-discovery chart files dir>, ISTIO_RELEASE=<x.y.z> for a release's files)
	@test -n "$(ISTIO_FILES)" || { echo "set ISTIO_FILES to the istio-discovery chart's files/ directory of the corpus's Istio commit"; exit 2; }
	$(NODE) dist/hack/template-parity.js $(ISTIO_FILES) $(if $(ISTIO_RELEASE),--release $(ISTIO_RELEASE)) $(PARITY_ARGS)

.PHONY: istiod-parity
istiod-parity: build ## Inject the corpus and random pods with istiod's own injector (built from the istio.io/istio module, about 400 MB of Go modules) and with meshrev's, and compare (ISTIO_FILES as for template-parity)
	@test -n "$(ISTIO_FILES)" || { echo "set ISTIO_FILES to the istio-discovery chart's files/ directory of the corpus's Istio commit"; exit 2; }
	cd hack/istiod-parity && go build -o $(CURDIR)/dist/istiod-parity .
	$(NODE) dist/hack/istiod-parity.js dist/istiod-parity $(ISTIO_FILES) --native true $(PARITY_ARGS)
	$(NODE) dist/hack/istiod-parity.js dist/istiod-parity $(ISTIO_FILES) --native false $(PARITY_ARGS)

.PHONY: deploy
deploy: ## Install meshrev into the cluster $KUBECONFIG points at (server-side apply)
	$(KUBECTL) --kubeconfig $(KUBECONFIG) apply --server-side -k deploy/

.PHONY: clean
clean: ## Remove build output
	rm -rf dist coverage
