# Two commands on a fresh machine: `make run` (main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
NATIVE := vae_jax/ops/native/libvae_onednn.so

.PHONY: venv run test lint bench gpu-wheels

# Bytecode is written by the first process that imports a module, not by pip for every module
# installed (a run imports a small part of what it installs). PYTHONDONTWRITEBYTECODE (set on
# some machines, CI's among them) is dropped for our commands, else every process compiles what
# it imports again.
unexport PYTHONDONTWRITEBYTECODE

# What a run needs: the pinned dependencies and the oneDNN wheel for the CPU kernels.
$(RUN_STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[native]'
	touch $(RUN_STAMP)

# What the tests add: pytest, ruff, the notebook runner and the PyTorch peer of the benchmarks.
$(DEV_STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q --no-compile -e '.[dev,native]'
	touch $(DEV_STAMP)

# The oneDNN convolution kernels (needs g++; oneDNN comes from the pinned wheel); without them
# the CPU step uses the matrix-product form, which is slower but computes the same function.
$(NATIVE): vae_jax/ops/native/onednn_conv.cc $(RUN_STAMP)
	$(PY) -m vae_jax.ops.native || echo "make: continuing without the oneDNN kernels"

venv: $(RUN_STAMP) $(NATIVE)

# The main job: the quick beta-VAE on procedural dSprites (offline, on the CPU).
run: venv
	$(PY) -m experiments.run --config=experiments/beta_vae.py:quick

lint: venv $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Tests go to the two workers one at a time, in conftest's order (the slow end-to-end tests first):
# a worker that finishes takes the next, so the run ends on short tests on both workers instead
# of one waiting for the other's long one. --durations lists the slowest tests in every log.
test: lint
	$(PY) -m pytest -n 2 --dist load --maxschedchunk 1 --durations=25 -q tests

bench: venv $(DEV_STAMP)
	$(PY) -m benchmarks.step_time

# For a GPU machine without network: the package benchmarks/gpu_bench.sh needs beyond jax, flax,
# optax, orbax and scikit-learn, as a wheel in .whl/ (ignored by git), for Python 3.12 on x86-64.
gpu-wheels:
	grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	    --platform manylinux_2_17_x86_64 -d .whl ml-collections==1.1.0
