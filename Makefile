# The two commands a newcomer needs: `make bench` (the default matrix on this machine) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: bench test lint dryrun-benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[compiler,slurm,dev]'
	touch $@

bench: $(STAMP)
	$(PY) -m opbench bench $(ARGS)

# The Slurm test needs Debian's Slurm packages: installed here where possible (root), else that test skips.
test: $(STAMP)
	-@bash .ci/install-slurm.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -ra $(ARGS)

dryrun-benchmark: $(STAMP)
	$(PY) benchmarks/dryrun_time.py

clean:
	rm -rf compiled results/ci* .snakemake
