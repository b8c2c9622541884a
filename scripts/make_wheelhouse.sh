#!/usr/bin/env bash
# Build .whl/, the wheels a GPU node without a package index needs to run the workflow (scripts/gpu_run.sh installs
# them with --no-deps): the project's runtime dependencies for CPython 3.12 on x86_64 (the lent GPU machines' Python;
# WHEELHOUSE_PYTHON overrides) and the `cudnn-frontend` extra (the cudnn backend's frontend variants; without its
# dependencies, CUTLASS's DSL and TVM's FFI, which only its DSL kernels import, not the graph API), less what such
# a node has (numpy, PyYAML, PyTorch; matplotlib and its dependencies: the lent machines' image lists them, and the 64
# MiB a device call carries has no room for them) and what a run there never imports (PuLP: gpu_run.sh schedules with
# --scheduler greedy; the compiler: modules are compiled here and carried).
#   usage: scripts/make_wheelhouse.sh [DEST]      (default .whl; it must fit the 64 MiB a device call carries)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}
pyver=${WHEELHOUSE_PYTHON:-3.12}
skip=" numpy pyyaml pulp matplotlib pillow fonttools kiwisolver contourpy cycler pyparsing python-dateutil six packaging "
mkdir -p "$dest"
rm -f "$dest"/*.whl  # a rebuilt wheelhouse holds no wheel an older pin left behind (two versions of one package)
built=$(mktemp -d); trap 'rm -rf "$built"' EXIT
# The runtime dependencies as pyproject.toml pins them (the `compiler` extra, iree-compile, stays here).
deps=$(python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
frontend=$(python3 -c 'import tomllib
print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["cudnn-frontend"])')
mapfile -t requirements <<< "$deps"
python3 -m pip wheel -q -w "$built" "${requirements[@]}"
for wheel in "$built"/*.whl; do
  file=$(basename "$wheel")
  dist=$(echo "${file%%-*}" | tr '_A-Z' '-a-z')
  case "$skip" in *" $dist "*) continue ;; esac
  case "$file" in
    *-none-any.whl) cp "$wheel" "$dest/" ;;  # pure Python: the same wheel serves 3.12
    *) rest=${file#*-}; version=${rest%%-*}
       python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$pyver" \
         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
         -d "$dest" "${file%%-*}==$version" ;;
  esac
done
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version "$pyver" \
  --platform manylinux_2_28_x86_64 -d "$dest" "$frontend"
du -sh "$dest"
