# The service as a container image (docs/deploy.md). `make image` builds it with podman on a locally built base;
# elsewhere `docker build -t torch-serve-node .` (or `podman build --format docker ...`) takes the official Node 20
# image. NODE_IMAGE is the base of every stage: Debian bookworm with Node 20 (and its headers) under /usr/local.
ARG NODE_IMAGE=node:20-bookworm-slim

# --- npm packages and the native TensorFlow addon, as `make setup` builds them ---
FROM ${NODE_IMAGE} AS deps
# What tools/native/setup-binding.sh needs: pip (it only downloads the TensorFlow wheel), a C++ compiler and make.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-pip g++ make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# The optional build secret `build_ca` is a CA bundle for builds behind a TLS-inspecting proxy (make image passes the
# host's); it is trusted for the download only and never stored in a layer.
RUN --mount=type=secret,id=build_ca --mount=type=cache,target=/root/.npm \
    if [ -s /run/secrets/build_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/build_ca; fi \
 && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund
COPY tools/native tools/native
# The wheel stays in a cache mount, so a lock file change does not download its 262 MB again.
RUN --mount=type=secret,id=build_ca --mount=type=cache,target=/src/.cache/native \
    if [ -s /run/secrets/build_ca ]; then export PIP_CERT=/run/secrets/build_ca; fi \
 && tools/native/setup-binding.sh cpu

# --- the model: model_tfjs/ from the build context, else the demo model converted as `make convert` does ---
FROM deps AS model
# The glob lets the build go on without a model_tfjs/; the script beside it says which was taken.
COPY deploy/container/bake-model.sh model_tfj[s] /stage/
# Debian's PyTorch stack, only when there is a model to convert.
RUN /stage/bake-model.sh deps
COPY tsconfig.json ./
COPY src src
COPY tools tools
RUN /stage/bake-model.sh convert /model

# --- production packages only; kept apart from the compile so that a source change leaves this layer cached ---
FROM deps AS modules
# Left out of the runtime: libtensorflow's headers and symbol tables (200 MB; its dynamic symbols stay) and the
# packages' source maps (190 MB, read only by debuggers).
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node/deps/include \
 && strip --strip-unneeded node_modules/@tensorflow/tfjs-node/deps/lib/*.so.2 \
 && find node_modules -name '*.map' -type f -delete

# --- the server and its web page, compiled (`npm run build`, as `make build`) ---
FROM deps AS build
COPY tsconfig.json ./
COPY src src
RUN npm run --silent build

# --- runtime: Node, the compiled server and page, production packages with libtensorflow, the model ---
FROM ${NODE_IMAGE} AS runtime
# A numeric user, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --gid 10001 app && useradd --uid 10001 --gid app --no-create-home --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
# Allocator settings of `make serve` (SERVE_MALLOC_ENV): freed pages stay for the next request, and the server hands
# them back when idle and after large images. Its node flags (SERVE_NODE_FLAGS) are in CMD.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=5012 \
    MODEL_DIR=/app/model_tfjs \
    DEVICE=cpu \
    MALLOC_ARENA_MAX=1 \
    MALLOC_MMAP_THRESHOLD_=33554432 \
    MALLOC_TRIM_THRESHOLD_=268435456 \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1
COPY --from=modules /src/node_modules node_modules
COPY deploy/container/healthcheck.js deploy/container/healthcheck.js
COPY --from=model /model model_tfjs
COPY --from=build /src/dist/src dist/src
COPY --from=build /src/dist/web dist/web
COPY --from=build /src/dist/native dist/native
USER 10001:10001
EXPOSE 5012
# Start period: the model loads and warms up before /health answers 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["node", "deploy/container/healthcheck.js"]
# The server drains on SIGTERM (SHUTDOWN_DRAIN_MS), then lets held requests finish (SHUTDOWN_GRACE_MS); stop with a
# timeout above both (`podman stop -t 40`, `docker stop -t 40`).
STOPSIGNAL SIGTERM
CMD ["node", "--initial-old-space-size=128", "--no-memory-reducer", "dist/src/main.js"]
