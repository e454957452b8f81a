"""Shared fixtures: small configs, generated idx files, a TFDS data_dir in tmp."""

import collections
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Two xdist workers share the 2 cores: one OpenMP thread each (oneDNN's kernels, PyTorch, BLAS)
# instead of two teams spinning against each other and XLA's own threads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# One persistent compilation cache for the test processes and the subprocesses they start (set
# before jax is imported, inherited through the environment): the same models compile in many
# processes (xdist workers, CLI runs, per-ISA workers), and a cached program loads in a fraction
# of its compile time. The cache keys on the program, the flags and the jaxlib version.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# Tests run each program for a few steps, so compile time dominates: LLVM's optimization level 0
# compiles faster and changes no result beyond rounding. Benchmarks and real runs keep XLA's
# default level (docs/performance.md, "The test suite").
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()
# XLA runs a process's matrix products and convolutions on a thread pool as wide as the machine;
# two workers on two cores would run four threads that preempt each other. One thread per
# process, as OMP_NUM_THREADS does for oneDNN.
if "--xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] += " --xla_cpu_multi_thread_eigen=false"
# Lowering a program to MLIR attaches each operation's Python traceback (100 frames by default) as
# its location; tracing and lowering, not XLA, are most of a test's compile time at level 0.
# Without the tracebacks only HLO metadata changes.
os.environ.setdefault("JAX_INCLUDE_FULL_TRACEBACKS_IN_LOCATIONS", "0")
# Eight host devices on two shared cores: a collective waits for all eight threads, and under a
# loaded machine XLA's default 40 s before aborting the process is not enough (seen: "Expected 8
# threads to join the rendezvous, but only 4 of them arrived on time"). Slow is not wrong here.
if "--xla_cpu_collective_call_terminate_timeout_seconds" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] += " --xla_cpu_collective_call_terminate_timeout_seconds=900"

import pytest  # noqa: E402

from tests.helpers import make_idx_dir  # noqa: E402
from vae_jax.ops import allocator  # noqa: E402

allocator.keep_freed_memory()  # as the CLI does (opt-in; VAE_JAX_MALLOC=system keeps glibc's defaults)


@pytest.fixture
def idx_dir(tmp_path):
    return make_idx_dir(tmp_path / "idx")


@pytest.fixture
def tfds_dir(tmp_path):
    return str(tmp_path / "tfds")


def pytest_collection_modifyitems(items):
    """Tests marked slow (the end-to-end runs) first. `make test` hands tests to its two
    workers one at a time in this order, so both start on the long ones and the short ones fill the
    end, instead of one worker finishing a long test alone after the other is done. The cases of a
    parametrized slow test are spread out (all first cases, then all second ones, ...): the first
    fills the compilation cache for its siblings before they start, instead of two workers
    compiling the same programs at the same moment."""
    case = collections.Counter()
    keys = []
    for index, item in enumerate(items):
        if item.get_closest_marker("slow") is None:
            keys.append((1, 0, index))
        else:
            keys.append((0, case[item.function], index))
            case[item.function] += 1
    items[:] = [items[k[2]] for k in sorted(keys)]
