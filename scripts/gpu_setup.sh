# Sourced by the scripts that run on a GPU machine without a package index (gpu_run.sh, gpu_overhead.sh): installs
# the carried wheelhouse (.whl/) and unpacks what scripts/pack_gpu_carry.sh packed into .carry/ (see gpu_run.sh).
if [ -d .whl ]; then
  # once per wheelhouse on a machine kept between calls (a stamp holds the wheels' checksum)
  sum=$(cat .whl/*.whl | sha256sum)
  if [ "$(cat /tmp/opbench-site/.installed 2>/dev/null)" != "$sum" ]; then
    rm -rf /tmp/opbench-site
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/opbench-site .whl/*.whl
    echo "$sum" > /tmp/opbench-site/.installed
  fi
  export PYTHONPATH=/tmp/opbench-site:$PWD PATH=/tmp/opbench-site/bin:$PATH
fi
if [ -f .carry/cutlass-headers.tar.xz ]; then
  mkdir -p /tmp/cutlass && tar xJf .carry/cutlass-headers.tar.xz -C /tmp/cutlass
  export CUTLASS_DIR=/tmp/cutlass
fi
# Unpacked once per archive (a stamp holds its checksum): a rerun that resumes a stopped run on the same machine must
# not make the artifacts newer than the results already there, or every finished point would run again.
stamp=compiled/.carry-unpacked
if [ -f .carry/compiled.tar.gz ] && [ "$(cat "$stamp" 2>/dev/null)" != "$(sha256sum < .carry/compiled.tar.gz)" ]; then
  tar xzf .carry/compiled.tar.gz
  # Sources first, artifacts after: the carried artifacts are newer than every input they were built from.
  tar tzf .carry/compiled.tar.gz | grep -v '/$' | grep -E '\.mlir$' | xargs -r touch
  sleep 1
  tar tzf .carry/compiled.tar.gz | grep -vE '\.mlir$' | xargs -r touch
  sha256sum < .carry/compiled.tar.gz > "$stamp"
fi
export PYTHONUNBUFFERED=1
