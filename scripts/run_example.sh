#!/usr/bin/env bash
# Compile one hand-written MLIR example with iree-compile and run it with iree-run-module.
#
# Usage: scripts/run_example.sh FILE [backend]
#   backend: llvm-cpu (default), cuda, rocm, vulkan-spirv
#
# The function to call and its inputs come from the FILE's leading comment block:
#   // RUN-FUNCTION: foo
#   // RUN-INPUT: 10xf32=0 1 2 3 4 5 6 7 8 9      (one line per input, in order)
# The module is written to compiled/examples/<backend>/<name>.vmfb. llvm-cpu always runs (device local-task);
# cuda runs where nvidia-smi works, rocm where /dev/kfd exists, vulkan-spirv where `vulkaninfo --summary`
# succeeds; elsewhere the script compiles only, says so, and exits 0.
# IREE_COMPILE / IREE_RUN_MODULE override the tools found on PATH or, failing that, in the project's .venv.
#
# Exit status: 0 on success (or compile-only), 2 on a usage error or missing tool, otherwise the failing
# tool's status.
set -euo pipefail

BACKENDS="llvm-cpu cuda rocm vulkan-spirv"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
    echo "usage: $(basename "$0") FILE [backend]   (backend: ${BACKENDS// /, }; default llvm-cpu)" >&2
}

die_usage() {
    echo "error: $*" >&2
    usage
    exit 2
}

# find_tool NAME OVERRIDE_VAR: print the tool's path, from $OVERRIDE_VAR if set, else from PATH.
find_tool() {
    local name="$1" override_var="$2"
    local override="${!override_var:-}"
    if [[ -n "$override" ]]; then
        if [[ -x "$override" ]] || command -v "$override" >/dev/null 2>&1; then
            printf '%s\n' "$override"
            return 0
        fi
        echo "error: $override_var=$override is not an executable" >&2
        exit 2
    fi
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    if [[ -x "$REPO_ROOT/.venv/bin/$name" ]]; then  # the project's venv (make bench / make test set it up)
        printf '%s\n' "$REPO_ROOT/.venv/bin/$name"
        return 0
    fi
    {
        echo "error: $name not found on PATH nor in $REPO_ROOT/.venv/bin."
        echo "  Get it with \`make bench\` (it sets up the project's .venv with IREE), or point $override_var at"
        echo "  the binary."
    } >&2
    exit 2
}

if [[ $# -lt 1 || $# -gt 2 ]]; then
    die_usage "expected FILE and an optional backend, got $# argument(s)"
fi
file="$1"
backend="${2:-llvm-cpu}"

case "$backend" in
    llvm-cpu)
        target_flags=(--iree-hal-target-device=local --iree-hal-local-target-device-backends=llvm-cpu
            --iree-llvmcpu-target-cpu=host)
        device=local-task
        ;;
    cuda)
        # IREE 3.13 has no sm_90: the CUDA driver JIT-compiles the sm_80 PTX on Hopper.
        target_flags=(--iree-hal-target-device=cuda --iree-cuda-target=sm_80)
        device=cuda
        ;;
    rocm)
        target_flags=(--iree-hal-target-device=hip --iree-rocm-target=gfx942)
        device=hip
        ;;
    vulkan-spirv)
        target_flags=(--iree-hal-target-device=vulkan --iree-vulkan-target=rdna3)
        device=vulkan
        ;;
    *)
        die_usage "unknown backend '$backend' (expected one of: $BACKENDS)"
        ;;
esac

if [[ ! -e "$file" ]]; then
    echo "error: no such file: $file" >&2
    exit 2
fi
if [[ ! -f "$file" || ! -r "$file" ]]; then
    echo "error: not a readable file: $file" >&2
    exit 2
fi

# Read RUN-FUNCTION / RUN-INPUT from the leading block of // comments (blank lines allowed).
function_name=""
input_flags=()
while IFS= read -r line || [[ -n "$line" ]]; do
    if [[ "$line" =~ ^[[:space:]]*$ ]]; then
        continue
    fi
    if [[ ! "$line" =~ ^[[:space:]]*// ]]; then
        break
    fi
    if [[ "$line" =~ ^[[:space:]]*//[[:space:]]*RUN-FUNCTION:[[:space:]]*([^[:space:]]+)[[:space:]]*$ ]]; then
        function_name="${BASH_REMATCH[1]#@}"
    elif [[ "$line" =~ ^[[:space:]]*//[[:space:]]*RUN-INPUT:[[:space:]]*(.*[^[:space:]])[[:space:]]*$ ]]; then
        input_flags+=("--input=${BASH_REMATCH[1]}")
    fi
done <"$file"

compile="$(find_tool iree-compile IREE_COMPILE)"

name="$(basename "$file")"
name="${name%.mlir}"
out_dir="$REPO_ROOT/compiled/examples/$backend"
vmfb="$out_dir/$name.vmfb"
mkdir -p "$out_dir"
# Compile to a temporary name and rename, so a failed or interrupted compile never leaves a partial module.
tmp_vmfb="$(mktemp "$out_dir/.$name.XXXXXX.vmfb")"
trap 'rm -f "$tmp_vmfb"' EXIT

status=0
"$compile" "$file" "${target_flags[@]}" -o "$tmp_vmfb" || status=$?
if [[ $status -ne 0 ]]; then
    echo "error: iree-compile failed on $file for $backend (exit $status)" >&2
    exit "$status"
fi
chmod "$(printf '%o' $((0666 & ~0$(umask))))" "$tmp_vmfb"  # mktemp makes it 0600
mv -f "$tmp_vmfb" "$vmfb"
echo "compiled $file -> $vmfb" >&2

has_device() {
    case "$backend" in
        llvm-cpu) return 0 ;;
        cuda) command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1 ;;
        rocm) [[ -e /dev/kfd ]] ;;
        vulkan-spirv) command -v vulkaninfo >/dev/null 2>&1 && vulkaninfo --summary >/dev/null 2>&1 ;;
    esac
}

if ! has_device; then
    echo "compile-only: no $backend device on this machine"
    exit 0
fi

if [[ -z "$function_name" ]]; then
    echo "error: $file has no '// RUN-FUNCTION: <name>' line in its header comment block" >&2
    exit 2
fi

run="$(find_tool iree-run-module IREE_RUN_MODULE)"
"$run" --module="$vmfb" --device="$device" --function="$function_name" ${input_flags[@]+"${input_flags[@]}"}
