# Two commands on a fresh machine: `make run` (main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NATIVE := vae_jax/ops/native/libvae_onednn.so

.PHONY: venv run test lint bench

# Bytecode is written by the first process that imports a module, not by pip for every module
# installed: pip's compile of all of TensorFlow and PyTorch was ~50 s of a ~100 s install, and a
# run imports a small part of them. PYTHONDONTWRITEBYTECODE (set on some machines, CI's among
# them) is dropped for our commands, else every process compiles what it imports again (tried:
# --no-compile with it set made the suite 85 s slower).
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[dev,native]'
	touch $(STAMP)

# The oneDNN convolution kernels (needs g++; oneDNN comes from the pinned wheel); without them
# the CPU step uses the matrix-product form, which is slower but computes the same function.
$(NATIVE): vae_jax/ops/native/onednn_conv.cc $(STAMP)
	$(PY) -m vae_jax.ops.native || echo "make: continuing without the oneDNN kernels"

venv: $(STAMP) $(NATIVE)

# The main job: the quick beta-VAE on procedural dSprites (offline, CPU, < 10 min).
run: venv
	$(PY) -m experiments.run --config=experiments/beta_vae.py:quick

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Tests go to the two workers one at a time, in conftest's order (the slow end-to-end tests first):
# a worker that finishes takes the next, so the run ends on short tests on both workers instead
# of one waiting for the other's long one. --durations lists the slowest tests in every log.
test: lint
	$(PY) -m pytest -n 2 --dist load --maxschedchunk 1 --durations=25 -q tests

bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.step_time
