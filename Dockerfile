# syntax=docker/dockerfile:1
# ScratchGPT's server image.
#
#   docker build -t scratchgpt .                          # CPU (the default target, last stage)
#   docker build -t scratchgpt:cuda --target cuda .       # NVIDIA GPUs: CUDA 12 + cuDNN 9
#   docker run -p 8080:8080 scratchgpt                    # serves the embedded model in /app/weights
#   docker run -p 8080:8080 -v /srv/models:/app/weights:ro scratchgpt serve --model /app/weights/my-gpt2
#   docker run --gpus all -p 8080:8080 scratchgpt:cuda
#   docker run -p 8080:8080 -v scratchgpt-data:/app/data scratchgpt   # keep uploads, jobs and finetuned models
#
# The install and start steps are the commands CI runs (.ci/run: `npm ci`; tests start
# `node bin/scratchgpt.js serve ...`), so what CI checks is what runs here. There is no build
# step: tsx (a runtime dependency) runs the TypeScript sources.

ARG NODE_IMAGE=node:20-slim

# ── dependencies: `npm ci` exactly as CI, then drop the dev tools (vitest, typescript, corpora) ──
FROM ${NODE_IMAGE} AS deps
# better-sqlite3 compiles its native addon when it cannot download a prebuilt one (offline builds).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# .npmrc sets onnxruntime-node-install=skip: the CPU library ships inside the npm package.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

# The CUDA provider libraries are fetched by onnxruntime-node's install script (from NuGet).
FROM ${NODE_IMAGE} AS deps-cuda
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund --onnxruntime-node-install=cuda12 && npm prune --omit=dev --no-audit --no-fund

# ── CUDA runtime: `docker build --target cuda` ──
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 AS cuda
# Node 20 itself comes from the official image (one static-enough binary).
COPY --from=deps-cuda /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=deps-cuda --chown=ubuntu:ubuntu /app/node_modules ./node_modules
COPY --chown=ubuntu:ubuntu . .
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8080
# Mount model folders here; the embedded default model is weights/scratchgpt-brown.
# /app/data: the fine-tuning data folder (SQLite, uploads, jobs, finetuned models).
RUN mkdir -p /app/data && chown ubuntu:ubuntu /app/data
VOLUME ["/app/weights", "/app/data"]
USER ubuntu
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/scratchgpt.js"]
CMD ["serve", "--device", "cuda"]

# ── CPU (default) ──
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
