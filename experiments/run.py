"""Command-line entry point: flags -> vae_jax.train.train_and_evaluate.

  python -m experiments.run --config=experiments/beta_vae.py:quick \
      [--config.loss.beta=8.0 ...] [--workdir=runs/mine] [--mode=train|eval]
      [--num_processes=N --process_id=I --coordinator_address=HOST:PORT | --distributed]
      [--distributed_timeout=SECONDS] [--sweep_slice=I/N]

`--sweep_slice=I/N` trains members I, I+N, ... of the config's sweep in its own workdir (a job
array's task, one process per GPU); `python -m experiments.study DIR_0 ... DIR_N-1` joins the
slices. In a multi-process run, every process waits at most --distributed_timeout seconds for
the others to join, then ends in one line.

Errors the user can fix (`vae_jax.errors.UserError`, and bad flags) end in one line
and exit code 2; anything else is a bug and keeps its traceback.

On a GPU or TPU, compiled programs are kept in JAX's persistent compilation cache (default
~/.cache/vae_jax/jax, at most 4 GiB, least recently used first out), so a rerun, a resume or
`--mode=eval` of the same model skips XLA's compile and cuDNN's autotuning (most of a short
run's time there). `--compilation_cache=DIR` keeps one on a CPU too (off by default there: some
CPUs' XLA builds reject every cached program with an error line, jax-ml/jax#38445),
`--compilation_cache=` turns it off; JAX_COMPILATION_CACHE_DIR, where set, wins over the default.
"""

import os
import sys
import threading
import traceback
from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags
from ml_collections.config_flags import config_path

from vae_jax import train
from vae_jax.errors import UserError
from vae_jax.ops import allocator
from vae_jax.train.sweep_spec import parse_sweep, slice_members

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:preset].")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default runs/<config name>).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "Train (resuming) or only evaluate.")
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False, "Resume a workdir even though its saved config differs."
)
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show Orbax's INFO lines and the traceback of user errors.")
_PROCESSES = flags.DEFINE_integer(
    "num_processes",
    None,
    "Multi-host: run this command once per process, each with --process_id "
    "and the same --coordinator_address (host:port of process 0); jax.distributed.initialize() "
    "starts first. Without these flags --distributed lets JAX detect the cluster (TPU, SLURM, MPI).",
)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (with --num_processes).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host).")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() first.")
_JOIN_TIMEOUT = flags.DEFINE_integer(
    "distributed_timeout", 300, "Multi-host: seconds to wait for all processes to join, then fail."
)
_SLICE = flags.DEFINE_string(
    "sweep_slice", None, "I/N: train members I, I+N, I+2N, ... of the sweep (sets config.sweep.slice)."
)
_CACHE = flags.DEFINE_string(
    "compilation_cache", None, "JAX's persistent compilation cache directory ('' turns it off)."
)
flags.mark_flags_as_required(["config"])
CACHE_MAX_BYTES = 4 * 2**30


class _QuietOrbax(logging.logging.Filter):
    """Drops the per-save INFO chatter of Orbax (which logs through absl) so progress stays readable."""

    def filter(self, record):
        # Python's WARNING (30), not absl's (-1), which every record's level exceeds.
        return record.levelno >= logging.logging.WARNING or "/orbax/" not in record.pathname


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def compilation_cache_dir(flag: str | None, environ, platform: str) -> str | None:
    """The cache directory to set: the flag's when given ('' for none); else None (JAX's own
    setting) where JAX_COMPILATION_CACHE_DIR is set or on a CPU; else $XDG_CACHE_HOME/vae_jax/jax."""
    if flag is not None:
        return flag
    if environ.get("JAX_COMPILATION_CACHE_DIR") or platform == "cpu":
        return None
    return str(Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vae_jax" / "jax")


def _use_compilation_cache() -> None:
    try:
        directory = compilation_cache_dir(_CACHE.value, os.environ, jax.default_backend())
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as e:  # a read-only or unknown home: run without the cache
        logging.warning("No compilation cache (%s); pass --compilation_cache=DIR to keep one.", e)
        directory = ""
    if directory is None:
        return
    jax.config.update("jax_compilation_cache_dir", directory or None)
    if directory and "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ:
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)


def _initialize_distributed() -> None:
    """jax.distributed.initialize(), before anything touches a device, when asked for."""
    given = {
        "coordinator_address": _COORDINATOR.value,
        "num_processes": _PROCESSES.value,
        "process_id": _PROCESS_ID.value,
    }
    named = {k: v for k, v in given.items() if v is not None}
    if named and len(named) < len(given):
        missing = ", ".join(f"--{k}" for k in given if k not in named)
        _fail(f"multi-host needs --coordinator_address, --num_processes and --process_id together "
              f"(missing {missing}), or --distributed alone on a cluster JAX detects")  # fmt: skip
    if _DISTRIBUTED.value or named:
        timeout = _JOIN_TIMEOUT.value
        # JAX aborts the process with a stack dump when processes do not join in time; this
        # watchdog (a thread: the wait releases the GIL) ends it first, in one line.
        watchdog = threading.Timer(timeout, _not_joined, (timeout, named.get("coordinator_address")))
        watchdog.daemon = True
        watchdog.start()
        try:
            jax.distributed.initialize(**named, initialization_timeout=timeout + 60)
        finally:
            watchdog.cancel()


def _not_joined(timeout: int, address: str | None) -> None:
    where = f" at {address}" if address else ""
    print(
        f"error: not all processes joined the run{where} within --distributed_timeout={timeout} s; "
        "start every process with the same --coordinator_address and --num_processes",
        file=sys.stderr,
        flush=True,
    )
    os._exit(2)


def _check_sweep_slice(config) -> None:
    """Sets config.sweep.slice from --sweep_slice; a bad spec or slice ends in one line before
    anything slow, and before waiting for the other processes of a multi-process run."""
    if _SLICE.value is not None:
        config.sweep.slice = _SLICE.value
    if config.sweep.get("slice"):
        slice_members(config, len(parse_sweep(config.sweep.spec, config)) if config.sweep.spec else 0)


def main(argv):
    del argv
    try:
        _check_sweep_slice(_CONFIG.value)
    except UserError as e:
        _fail(str(e))
    _initialize_distributed()
    allocator.keep_freed_memory()  # before XLA allocates; VAE_JAX_MALLOC=system keeps glibc's defaults
    _use_compilation_cache()
    if not _VERBOSE.value:
        logging.get_absl_logger().addFilter(_QuietOrbax())
    config = _CONFIG.value
    workdir = _WORKDIR.value or Path("runs") / config.name  # e.g. runs/beta_vae_quick
    logging.info(
        "JAX %s, devices: %s, process %d of %d",
        jax.__version__, jax.devices(), jax.process_index() + 1, jax.process_count(),
    )  # fmt: skip
    logging.info("Workdir: %s", workdir)
    try:
        if _MODE.value == "eval":
            results = train.evaluate_checkpoint(config, workdir)
        else:
            results = train.train_and_evaluate(config, workdir, _ALLOW_CHANGE.value)
    except UserError as e:
        if _VERBOSE.value:
            raise
        _fail(str(e))
    logging.info("Results: %s", results)


def _unknown_override(e: Exception, argv) -> str | None:
    """The one-line message for an override of a field the config lacks, or None if e is not that.

    ml_collections resolves `--config.a.b=v` in its config_path module, where a missing field
    raises a bare KeyError or AttributeError (absl only wraps ValueError and TypeError); the
    same types raised outside it (a config file's own bug) are not this error.
    """
    if not isinstance(e, KeyError | AttributeError):
        return None
    if all(frame.filename != config_path.__file__ for frame in traceback.extract_tb(e.__traceback__)):
        return None
    text = str(e).strip("'\"").replace("\\n", " ").replace("\\'", "'").replace('\\"', '"')
    field = text.split("'")[1] if text.count("'") >= 2 else text
    flag = next((a for a in argv if a.startswith("--config.") and field in a.split("=")[0]), "--config.*")
    return f"{flag.split('=')[0]}: the config has no field {field!r}. {text.split(' ', 1)[-1]}".strip()


def parse_flags(argv):
    """absl's flag parsing, but a bad --config (a missing file, an unknown preset or field)
    ends in one line."""
    try:
        args = flags.FLAGS(argv)
    except flags.Error as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        _fail(lines[-1] if lines else str(e))
    except (KeyError, AttributeError) as e:
        message = _unknown_override(e, argv)
        if message is None:
            raise
        _fail(message)
    path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":", 1)[0]
    if not Path(path).is_file():
        _fail(f"--config={path}: no such config file")
    return args


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
