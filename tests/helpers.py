"""Helpers shared by the run-level tests: load configs, run the CLI, read a workdir's state."""

import gzip
import importlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from vae_jax.train.state import TrainState

ROOT = Path(__file__).resolve().parents[1]
# factor_vae stands for the study's configs (beta_tcvae.py, dip_vae.py change only the objective,
# which tests/test_sweep.py trains): its state carries a second network and optimizer.
CONFIGS = (
    "ae",
    "vae",
    "iwae",
    "beta_vae",
    "vq_vae",
    "fsq_vae",
    "rvq_vae",
    "conv_ae",
    "latent2d",
    "anomaly",
    "seq2seq_ae",
    "ppca",
    "factor_vae",
)


def device_count_flags(devices: int) -> str:
    """XLA_FLAGS for a subprocess with `devices` host devices, keeping the suite's own flags."""
    return f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()


def load_config(name: str, preset: str | None = None):
    return importlib.import_module(f"experiments.{name}").get_config(preset)


def config_and_flags(name: str, preset: str, overrides: dict) -> tuple:
    """experiments/<name>.py:<preset> with {"group.field": value} overrides applied, and the same
    config as command-line flags for `experiments.run`."""
    config = load_config(name, preset)
    for key, value in overrides.items():
        group, field = key.split(".")
        config[group][field] = value
    flags = [f"--config.{k}={v}".replace(" ", "") for k, v in overrides.items()]
    return config, [f"--config={ROOT / 'experiments' / name}.py:{preset}", *flags]


def use_local_idx(config, idx_dir, tfds_dir):
    """Points an image-dataset config at generated idx files (tests never touch the network)."""
    if config.data.name not in ("dsprites", "sines"):
        config.data.source = "local"
        config.data.local_dir = str(idx_dir)
        config.data.data_dir = str(tfds_dir)
    return config


def cli(*args, cwd=ROOT, timeout=600, check=True, background=False):
    """Runs `python -m experiments.run ARGS` in a subprocess."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "experiments.run", *args]
    if background:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def final_params(config, workdir) -> dict[str, np.ndarray]:
    """The parameters of the latest checkpoint in workdir, flattened by path."""
    from vae_jax.train import checkpoint, engine

    _, _, _, state = engine.setup(config)
    manager = checkpoint.make_manager(workdir)
    restored = checkpoint.restore_latest(manager, state)
    manager.close()
    assert restored is not None, f"no checkpoint in {workdir}"
    leaves = jax.tree_util.tree_leaves_with_path(
        {"params": restored.params, "model_state": restored.model_state, "step": restored.step}
    )
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves}


def assert_same_params(a: dict, b: dict, rtol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=1e-7, err_msg=k)


def assert_workdir_contract(workdir, *, trained=True, checkpoints=True, record_fields=()) -> dict:
    """Asserts what every trainer leaves in workdir (DESIGN.md, "Workdir"); returns results.json.

    config.json and results.json are JSON objects; every line of metrics.jsonl is a JSON object
    with an int `step`, a `split` in {train, eval} and float metrics; images/ (at any depth: a
    sweep's are per member) holds a PNG; there are TensorBoard events. What differs per trainer:
    `trained` (train records with a finite loss; pPCA has only its eval record), `checkpoints`
    (a non-empty checkpoints/; pPCA, fitted in closed form, has none), `record_fields`
    (non-metric keys of the records: a sweep's member index and swept values).
    """
    workdir = Path(workdir)
    assert isinstance(json.loads((workdir / "config.json").read_text()), dict)
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole: no torn line either
    assert records and all(isinstance(r, dict) for r in records)
    for r in records:
        assert isinstance(r["step"], int) and r["split"] in ("train", "eval"), r
        metrics = {k: v for k, v in r.items() if k not in ("step", "split", *record_fields)}
        assert all(isinstance(v, float) for v in metrics.values()), r
    assert {r["split"] for r in records} == ({"train", "eval"} if trained else {"eval"})
    assert all(math.isfinite(r["loss"]) for r in records if r["split"] == "train")
    assert not checkpoints or any((workdir / "checkpoints").iterdir())
    assert list(workdir.rglob("images/*.png"))
    assert list(workdir.rglob("events.out.tfevents.*"))
    results = json.loads((workdir / "results.json").read_text())
    assert isinstance(results, dict)
    return results


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes a uint8 array as an idx file (gzipped if the name ends in .gz)."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_norb_matrix(path: str | os.PathLike, array: np.ndarray) -> None:
    """Writes a uint8 or int32 array as a NYU binary-matrix file (gzipped for '.gz')."""
    array = np.asarray(array)
    magic = 0x1E3D4C55 if array.dtype == np.uint8 else 0x1E3D4C54
    array = array.astype("u1" if magic == 0x1E3D4C55 else "<i4")
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    header = np.array([magic, array.ndim, *dims], "<i4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


# A toy run for the engine's loop: a scalar "model" that adds each batch to its parameter.


def toy_config(num_steps=10, log_every=3, checkpoint_every=4, eval_every=5) -> ml_collections.ConfigDict:
    c = common.base_config()
    c.train.num_steps, c.train.log_every, c.train.checkpoint_every = num_steps, log_every, checkpoint_every
    c.eval.every = eval_every
    return c


def toy_state(members: int | None = None) -> TrainState:
    """A state whose step adds the batch to `params['w']`."""
    shape = () if members is None else (members,)
    return TrainState(
        step=jnp.zeros(shape, jnp.int32), params={"w": jnp.zeros(shape)}, opt_state={}, model_state={},
        hparams={}, apply_fn=None, tx=None,
    )  # fmt: skip


def toy_step(state, batch):
    """Adds batch; a NaN batch leaves the state unchanged and reports finite = 0 (as the real step)."""
    finite = jnp.isfinite(batch)
    new = state.replace(step=state.step + 1, params={"w": state.params["w"] + batch})
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
    return new, {"loss": batch * jnp.ones_like(state.params["w"]), "finite": finite.astype(jnp.float32)}


def batches_from(values):
    """start -> iterator of the inputs of steps start+1, start+2, ... (values[t - 1] for step t)."""
    return lambda start: iter(jnp.asarray(v, jnp.float32) for v in values[start:])


def make_idx_dir(path, n_train=300, n_test=100, seed=0):
    """Writes the four MNIST-style idx.gz files of a small synthetic 10-class dataset."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, label in enumerate(labels):  # class c: a bright bar at rows 2c..2c+5
            images[i, 2 * label : 2 * label + 6, 4:24] = 200 + rng.integers(0, 55)
        write_idx(path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return path


# Ground-truth data and representations in closed form, for the metrics' tests.


class ToyFactors:
    """Ground-truth data whose observations are the factor values themselves (binary factors)."""

    factor_names = ("a", "b", "c", "d")
    factor_sizes = (2, 2, 2, 2)
    observation_shape = (4,)
    num_factors = 4

    def sample_factors(self, num, rng):
        return rng.integers(0, 2, size=(num, 4))

    def sample_observations_from_factors(self, factors, rng=None):
        return np.asarray(factors, np.float64)


class Codes:
    """A representation given in closed form from the factors; optionally a Gaussian posterior."""

    def __init__(self, mean_fn, variance=None):
        self.mean_fn, self.variance = mean_fn, variance
        if variance is not None:
            self.posterior_of_factors = self._posterior

    def __call__(self, images):
        raise AssertionError("metrics should read codes from the factors")

    def of_factors(self, factors):
        return self.mean_fn(np.asarray(factors, np.float64))

    def _posterior(self, factors):
        mean = self.of_factors(factors)
        return mean, np.full_like(mean, self.variance)


def small_config(kind: str):
    """A small conv VAE (kind 'vae') or EMA VQ-VAE ('vqvae_ema') for 28 x 28 images, for the
    device-count and sweep workers."""
    c = common.base_config()
    c.model.encoder = "conv"
    c.model.channels = (8, 16)
    c.model.dense = 32
    c.model.latent_dim = 4
    if kind == "vqvae_ema":
        c.model.name = "vqvae"
        c.model.vq.num_codes, c.model.vq.code_dim = 16, 8
        c.model.vq.ema, c.model.vq.restart_threshold = True, 0.5
        c.loss.likelihood = "gaussian"
    return c


# Shapes and exported modules, without running anything (test_export, test_mixed_precision).
MNIST_LIKE = ("mnist", "fashion_mnist", "kmnist", "binarized_mnist", "emnist_letters")
IMAGE_SHAPES = {**dict.fromkeys(MNIST_LIKE, (28, 28, 1)), "cifar10": (32, 32, 3)}


def data_shape(name: str) -> tuple[int, ...]:
    """One example's shape, as `data.load_dataset` would report it, without loading anything."""
    from vae_jax import data as data_lib

    if name in data_lib.GROUND_TRUTH:
        return tuple(data_lib.get_ground_truth_data(name).observation_shape)  # procedural: nothing read
    if name in data_lib.SEQUENCES:
        return tuple(data_lib.SEQUENCES[name]().observation_shape)
    assert name in data_lib.sources.IMAGE_DATASETS and name in IMAGE_SHAPES, f"no shape for {name!r}"
    return IMAGE_SHAPES[name]


def abstract_key():
    return jax.eval_shape(lambda: jax.random.key(0))


def abstract_state(config, shape):
    from vae_jax.models import build_model
    from vae_jax.train.state import create_train_state

    model = build_model(config, shape)
    return jax.eval_shape(lambda rng: create_train_state(model, config, shape, rng), abstract_key())


# StableHLO: `%y = stablehlo.<op>(...) ... : (tensor<3x4xbf16>, tensor<f32>) -> tensor<...>`.
TENSOR = re.compile(r"tensor<((?:[0-9]+x)*)([a-z]+[0-9]*)>")


def operands(text: str, op: str) -> list[tuple[tuple[tuple[int, ...], str], ...]]:
    """(shape, element type) of the operands of every `stablehlo.<op>` in StableHLO text."""
    found = []
    for line in text.splitlines():
        if re.search(rf"= stablehlo\.{op}[ (]", line):
            signature = line.rsplit(" : (", 1)[1].split(") ->", 1)[0]
            found.append(
                tuple(
                    (tuple(int(d) for d in dims.split("x") if d), dtype)
                    for dims, dtype in TENSOR.findall(signature)
                )
            )
    return found


def operand_types(text: str, op: str) -> list[tuple[str, ...]]:
    """The operands' element types ('bf16', 'f32', 'i32', ...) of every `stablehlo.<op>` in text."""
    return [tuple(dtype for _, dtype in found) for found in operands(text, op)]


def products(text: str) -> list[tuple[str, ...]]:
    """Operand types of the matrix products and convolutions in text."""
    return operand_types(text, "dot_general") + operand_types(text, "convolution")
