# syntax=docker/dockerfile:1
# meshrev operator image: `docker build -t ghcr.io/meshrev/meshrev:v0.1.0 .` (the registry is a placeholder).
#
# Runtime base: node:24-bookworm-slim, the same image as the build stage, rather than distroless nodejs24:
# the pinned ENTRYPOINT ["node", ...] needs `node` on PATH (distroless puts it at /nodejs/bin/node), and a
# shell keeps `kubectl exec` debugging possible. The hardening distroless would bring comes from the pod
# instead (non-root 65532, read-only root filesystem, no capabilities, RuntimeDefault seccomp), and npm is
# removed from the runtime image since nothing runs it there.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# Production dependencies only, installed clean (no dev packages to prune, no install scripts run).
FROM ${NODE_IMAGE} AS production-deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
ENV NODE_ENV=production
WORKDIR /app
# package.json carries "type": "module", which Node needs to load dist/ as ES modules.
COPY package.json ./
COPY --from=production-deps /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY deploy/crds ./deploy/crds
USER 65532:65532
EXPOSE 9443 8080
# --max-semi-space-size, --v8-pool-size: see src/cli/node-flags.ts (the one list; a unit test keeps this line equal to it).
ENTRYPOINT ["node", "--max-semi-space-size=4", "--v8-pool-size=1", "dist/src/cli/main.js"]
CMD ["operator"]
