# syntax=docker/dockerfile:1
# ScratchGPT's server image.
#
#   docker build -t scratchgpt .                          # CPU (the default target, last stage)
#   docker build -t scratchgpt:cuda --target cuda .       # NVIDIA GPUs: CUDA 12 + cuDNN 9
#   docker run -p 8080:8080 scratchgpt                    # serves the embedded models in /app/weights
#   docker run -p 8080:8080 -v /srv/models:/app/weights:ro scratchgpt serve --model /app/weights/my-gpt2
#   docker run --gpus all -p 8080:8080 scratchgpt:cuda
#   docker run -p 8080:8080 -v scratchgpt-data:/app/data scratchgpt   # keep uploads, jobs and finetuned models
#
# The install and start steps are the commands CI runs (.ci/run: `npm ci`; tests start
# `node bin/scratchgpt.js serve ...`), so what CI checks is what runs here. There is no build
# step: tsx (a runtime dependency) runs the TypeScript sources.
#
# scripts/container-test.sh builds the CPU target with podman and smoke-tests it (docs/server.md,
# "Docker"). Where no registry is reachable it passes NODE_IMAGE=localhost/node:20-slim, a
# stand-in it makes from Debian bookworm and the host's Node 20; this file is the same either way.

ARG NODE_IMAGE=node:20-slim

# ── dependencies: `npm ci` exactly as CI, then drop what the server never loads ──
# The image's npm (Node 20 ships npm 10) does not read package.json `allowScripts`, so the skip of
# onnxruntime-node's CUDA download (from NuGet) is explicit here: ONNXRUNTIME_NODE_INSTALL=skip,
# read by node_modules/onnxruntime-node/script/install.js. The CPU library ships in the npm package.
# Then removed: dev dependencies (vitest, typescript, corpora; their empty scope folders too);
# onnxruntime-node's binaries for other platforms (darwin, win32, linux/arm64: ~245 MB);
# better-sqlite3's compiler intermediates and sqlite sources (only build/Release/better_sqlite3.node
# is loaded); protobufjs's code-generator CLI (20 MB; onnx-proto uses protobufjs/minimal).
FROM ${NODE_IMAGE} AS deps
# better-sqlite3 compiles its native addon when it cannot download a prebuilt one (offline builds).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund \
 && find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete \
 && keep="$(node -p 'process.platform + "/" + process.arch')" \
 && cd /app/node_modules/onnxruntime-node/bin/napi-v6 \
 && for d in */*; do [ "$d" = "$keep" ] || rm -rf "$d"; done \
 && find . -mindepth 1 -maxdepth 1 -type d -empty -delete \
 && test -e "$keep/onnxruntime_binding.node" \
 && cd /app/node_modules/better-sqlite3 \
 && if [ -e build/Release/better_sqlite3.node ]; then \
      find build -mindepth 1 -not -path build/Release -not -path build/Release/better_sqlite3.node -delete && rm -rf deps src; \
    fi \
 && rm -rf /app/node_modules/protobufjs/cli /root/.npm

# The CUDA provider libraries are not in the npm package: onnxruntime-node's install script fetches
# them from NuGet. `npm ci` above skipped it (whichever npm runs it); here it runs once, forced
# (`true`: install the platform's extras, cuda12 on linux/x64; its parser drops the value "cuda12"),
# and the `test` checks that the provider library arrived. Not built on the project's own machines
# (no container registry, no NuGet, no GPU there).
FROM deps AS deps-cuda
RUN ONNXRUNTIME_NODE_INSTALL=true node node_modules/onnxruntime-node/script/install.js \
 && test -e "node_modules/onnxruntime-node/bin/napi-v6/$(node -p 'process.platform + "/" + process.arch')/libonnxruntime_providers_cuda.so"

# ── CUDA runtime: `docker build --target cuda` ──
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS cuda
# Node 20 itself comes from the official image (one static-enough binary).
COPY --from=deps-cuda /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=deps-cuda --chown=ubuntu:ubuntu /app/node_modules ./node_modules
COPY --chown=ubuntu:ubuntu . .
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
# Mount model folders here; the embedded default models are in weights/.
# /app/data: the fine-tuning data folder (SQLite, uploads, jobs, finetuned models).
RUN mkdir -p /app/data && chown ubuntu:ubuntu /app/data
VOLUME ["/app/weights", "/app/data"]
USER ubuntu
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/scratchgpt.js"]
CMD ["serve", "--device", "cuda"]

# ── CPU (default): the Node image, node_modules and the sources; no compiler, no npm cache ──
FROM ${NODE_IMAGE} AS cpu
WORKDIR /app
COPY --from=deps --chown=node:node /app/node_modules ./node_modules
COPY --chown=node:node . .
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/weights", "/app/data"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/scratchgpt.js"]
CMD ["serve"]
