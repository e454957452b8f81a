"""Datasets and input pipelines: `load_dataset(config)` and `get_ground_truth_data(name)`."""

import dataclasses
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from vae_jax.data.pipeline import array_batch_fn, ground_truth_batch_fn
from vae_jax.data.sequences import Sines
from vae_jax.data.sources import (
    BINARIZE,
    GROUND_TRUTH,
    IMAGE_DATASETS,
    get_ground_truth_data,
    load_image_splits,
)
from vae_jax.errors import ConfigError, DatasetUnavailableError

__all__ = [
    "BINARIZE",
    "DATASETS",
    "Dataset",
    "DatasetUnavailableError",
    "get_ground_truth_data",
    "load_dataset",
]

SEQUENCES = {"sines": Sines}
DATASETS = (*IMAGE_DATASETS, *GROUND_TRUTH, *SEQUENCES)


@dataclasses.dataclass
class Dataset:
    """What training and evaluation need from a dataset."""

    name: str
    data_shape: tuple[int, ...]  # one example, e.g. (64, 64, 1)
    batch_at: Callable[[int], np.ndarray]  # step -> this process's slice of the global batch
    eval_images: np.ndarray  # [N, ...] float32
    eval_labels: np.ndarray | None = None
    train_images: np.ndarray | None = None  # in-memory sources only (for data.on_device)
    ground_truth: object | None = None  # sources with factors (dSprites and its kin)
    eval_factors: np.ndarray | None = None

    @property
    def num_train_examples(self) -> int | None:
        """The training set's size (an epoch is num_train_examples // train.batch_size steps);
        None for sources that draw every batch afresh (ground-truth factors, sequences): no epochs."""
        return None if self.train_images is None else len(self.train_images)


def load_dataset(config: ml_collections.ConfigDict, rows: tuple[int, int] | None = None) -> Dataset:
    """Builds the dataset named by config.data.name with the train batch size and seed.

    rows: (index, count): `batch_at` gives part index of count equal parts of each global batch
    (default: this process's, (process_index, process_count); a mesh's `sharding.process_rows`).
    """
    cfg = config.data
    batch = config.train.batch_size
    pid, nproc = rows or (jax.process_index(), jax.process_count())
    if cfg.name in GROUND_TRUTH:
        gt = get_ground_truth_data(cfg.name, cfg)
        eval_rng = np.random.default_rng([config.seed, 2**31 - 1])
        factors = gt.sample_factors(config.eval.num_examples, eval_rng)
        return Dataset(
            name=cfg.name,
            data_shape=tuple(gt.observation_shape),
            batch_at=ground_truth_batch_fn(gt, batch, config.seed, pid, nproc),
            eval_images=gt.sample_observations_from_factors(factors, eval_rng),
            eval_labels=factors[:, 0],
            ground_truth=gt,
            eval_factors=factors,
        )
    if cfg.name in SEQUENCES:
        source = SEQUENCES[cfg.name]()
        return Dataset(
            name=cfg.name,
            data_shape=tuple(source.observation_shape),
            batch_at=source.batch_fn(batch, config.seed, pid, nproc),
            eval_images=source.sample(
                config.eval.num_examples or 2000, np.random.default_rng([config.seed, 2**31 - 1])
            ),
        )
    if cfg.name not in IMAGE_DATASETS:
        raise ConfigError(f"data.name={cfg.name!r} is not a known dataset; valid: {list(DATASETS)}")
    splits = load_image_splits(cfg, config.eval.split)
    train = splits.train
    if cfg.held_out_class >= 0:  # anomaly detection: train without one class
        if splits.train_labels is None:
            raise ConfigError(f"data.held_out_class needs labels; {cfg.name} has none")
        train = train[splits.train_labels != cfg.held_out_class]
    if cfg.get("max_train_examples"):
        train = train[: cfg.max_train_examples]
    eval_images, eval_labels = splits.eval, splits.eval_labels
    if cfg.binarize == "dynamic":  # evaluate on one fixed stochastic binarization (Burda et al.)
        eval_images = (np.random.default_rng(12345).random(eval_images.shape) < eval_images).astype(
            np.float32
        )
    if config.eval.num_examples:
        eval_images = eval_images[: config.eval.num_examples]
        eval_labels = None if eval_labels is None else eval_labels[: config.eval.num_examples]
    return Dataset(
        name=cfg.name,
        data_shape=tuple(train.shape[1:]),
        batch_at=array_batch_fn(train, batch, config.seed, pid, nproc),
        eval_images=eval_images,
        eval_labels=eval_labels,
        train_images=train,
    )
