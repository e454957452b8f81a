# Two commands on a fresh machine: `make run` (main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NATIVE := vae_jax/ops/native/libvae_onednn.so

.PHONY: venv run test lint bench

# pip byte-compiles every installed module (~50 s of the ~100 s install). Keep it: where
# PYTHONDONTWRITEBYTECODE is set (CI machines), a module left uncompiled is compiled again by
# every process that imports it (pip --no-compile: install 54 s, but the suite 85 s slower).
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,native]'
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

# worksteal: an idle worker takes queued tests from the busy one (the suite's times vary 100-fold);
# --durations lists the slowest tests in every log, so a slowdown is seen where it happens.
test: lint
	$(PY) -m pytest -n 2 --dist worksteal --durations=25 -q tests

bench: venv
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.step_time
