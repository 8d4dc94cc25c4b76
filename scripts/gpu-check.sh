#!/usr/bin/env bash
# Runs bench/gpu-check.ts from the offline kit (scripts/gpu-kit.sh) on a machine with no network and
# no Node, such as a lent GPU machine (docs/gpu.md, "The offline check"): unpacks the kit, puts its
# Node first on PATH, and makes Vulkan findable (the kit's loader where the system has none, NVIDIA's
# ICD where the driver ships one). Arguments other than these go to the check.
#
#   bash scripts/gpu-check.sh [--kit FILE] [--save FILE] [--quick] [--devices cpu,webgpu,cuda] [--models 124m,355m] …
#
# The kit may also lie in parts (FILE.part-aa, -ab, … from gpu-kit.sh --split): they are joined.
# The check's one JSON line goes to stdout, and to --save's FILE too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit=$root/kit/scratchgpt-kit.tar.xz
save=
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --kit) kit=$2; shift 2 ;;
    --save) save=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -n "$save" ]; then save=$(realpath -m "$save"); fi # the check runs from inside the kit
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -e "$kit" ] && compgen -G "$kit.part-*" >/dev/null; then
  cat "$kit".part-* >"$tmp/kit.tar.xz" # split's suffixes sort in order
  kit=$tmp/kit.tar.xz
fi
[ -e "$kit" ] || { echo "gpu-check: no kit at $kit: build it with scripts/gpu-kit.sh" >&2; exit 2; }
tar -xJf "$kit" -C "$tmp"
k=$tmp/scratchgpt-kit
export PATH=$k/node/bin:$PATH
sed 's/^/gpu-check: kit: /' "$k/MANIFEST" >&2

# Only the libraries the system lacks come from the kit: the kit's would shadow the system's.
has_lib() { ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$1 .*x86-64"; }
mkdir -p "$tmp/lib"
for f in "$k"/vulkan/*; do has_lib "$(basename "$f")" || cp "$f" "$tmp/lib/"; done
# NVIDIA's Vulkan driver: the loader looks in /usr/share and /etc, but containers often mount it elsewhere.
if [ -z "${VK_ICD_FILENAMES:-}${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -e "$icd" ]; then
      export VK_ICD_FILENAMES=$icd VK_DRIVER_FILES=$icd # older and newer loaders read one each
      break
    fi
  done
fi
# The ICD names its library without a path; a driver mounted outside the linker's cache needs a hint.
if [ -n "${VK_ICD_FILENAMES:-}" ] && ! has_lib libGLX_nvidia.so.0; then
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu; do
    if [ -e "$d/libGLX_nvidia.so.0" ]; then export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; break; fi
  done
fi
if [ -n "$(ls -A "$tmp/lib")" ]; then export LD_LIBRARY_PATH=$tmp/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}; fi
echo "gpu-check: node $(node -v); Vulkan driver ${VK_ICD_FILENAMES:-(loader default)}; from the kit: $(ls "$tmp/lib" | tr '\n' ' ')" >&2
if command -v nvidia-smi >/dev/null; then nvidia-smi -L >&2 || true; fi

cd "$k/app"
node node_modules/tsx/dist/cli.mjs bench/gpu-check.ts ${args[@]+"${args[@]}"} >"$tmp/result.json"
cat "$tmp/result.json"
if [ -n "$save" ]; then cp "$tmp/result.json" "$save"; fi
