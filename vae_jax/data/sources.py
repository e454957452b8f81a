"""Loading datasets into memory: TFDS catalog, local idx files through TFDS; the ground-truth registry.

TFDS is imported only when an image dataset is loaded (procedural data runs without TensorFlow).
"""

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import ml_collections
import numpy as np

from vae_jax.data.dsprites import DSprites
from vae_jax.data.dsprites_variants import ColorDSprites, NoisyDSprites, TexturedDSprites
from vae_jax.data.factor_datasets import FACTOR_DATASETS
from vae_jax.data.idx import IDX_FILES, find_idx_file
from vae_jax.errors import ConfigError, DatasetUnavailableError

if TYPE_CHECKING:
    import tensorflow_datasets as tfds

DEFAULT_LOCAL_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
# name -> constructor from `config.data` (or None: defaults); procedural ones need no files.
GROUND_TRUTH = {
    "dsprites": lambda data_config=None: DSprites(),
    "color_dsprites": lambda data_config=None: ColorDSprites(),
    "noisy_dsprites": lambda data_config=None: NoisyDSprites(),
    "textured_dsprites": lambda data_config=None: TexturedDSprites(
        None if data_config is None else data_config.get("texture")
    ),
    **FACTOR_DATASETS,
}
IMAGE_DATASETS = (
    "mnist",
    "fashion_mnist",
    "kmnist",
    "binarized_mnist",
    "cifar10",
    "emnist_letters",
)
BINARIZE = ("none", "threshold", "dynamic")


@dataclasses.dataclass
class ImageSplits:
    """Images in [0, 1] as float32 [N, H, W, C] and integer labels [N] (or None)."""

    train: np.ndarray
    eval: np.ndarray
    train_labels: np.ndarray | None
    eval_labels: np.ndarray | None
    num_classes: int | None


def get_ground_truth_data(name: str, data_config: ml_collections.ConfigDict | None = None):
    """The ground-truth-factor source called `name` (factor_names, sample_factors, ...).

    Args:
      name: a key of GROUND_TRUTH.
      data_config: `config.data`, for the sources that read files (local_dir, source, data_dir)
        or a texture (textured_dsprites: texture); None: their defaults.
    """
    if name not in GROUND_TRUTH:
        raise ConfigError(f"no ground-truth-factor dataset {name!r}; valid: {sorted(GROUND_TRUTH)}")
    return GROUND_TRUTH[name](data_config)


def local_dir_for(cfg: ml_collections.ConfigDict) -> Path | None:
    local = cfg.get("local_dir") or DEFAULT_LOCAL_DIRS.get(cfg.name)
    return Path(local).expanduser() if local else None


def _has_idx_files(directory: Path | None) -> bool:
    if directory is None or not directory.is_dir():
        return False
    return all(find_idx_file(directory, s) for stems in IDX_FILES.values() for s in stems)


def _unavailable(cfg, local: Path | None, reason: str) -> DatasetUnavailableError:
    where = f"{local}" if local else "no local directory (config.data.local_dir is unset)"
    files = ", ".join(stem for stems in IDX_FILES.values() for stem in stems)
    hint = [f"set --config.data.local_dir to a directory with the four idx files ({files}[.gz])"]
    if cfg.name == "fashion_mnist":
        hint.insert(0, "install Debian's package: apt-get install dataset-fashion-mnist")
    hint.append(f"or run with network access so TFDS can download {cfg.name!r} into {cfg.data_dir}")
    return DatasetUnavailableError(
        f"dataset {cfg.name!r} is not available: looked in {where} and in TFDS data_dir "
        f"{cfg.data_dir} ({reason}). To fix: " + "; ".join(hint)
    )


def get_builder(cfg: ml_collections.ConfigDict) -> "tfds.core.DatasetBuilder":
    """A prepared TFDS builder for cfg.name, from local idx files or the TFDS catalog."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DatasetUnavailableError(
            f"dataset {cfg.name!r} is read through TensorFlow Datasets, which does not import here "
            f"({e}). To fix: pip install -e . (it installs tensorflow-datasets and tensorflow-cpu), "
            "or train on a procedural dataset (data.name=dsprites)"
        ) from e

    from vae_jax.data import builders

    data_dir = str(Path(cfg.data_dir).expanduser())
    local = local_dir_for(cfg)
    use_local = cfg.source == "local" or (cfg.source == "auto" and _has_idx_files(local))
    if use_local:
        if cfg.name not in builders.IDX_DATASETS or not _has_idx_files(local):
            raise _unavailable(cfg, local, "the idx files are missing")
        builder = builders.LocalIdx(config=cfg.name, data_dir=data_dir)
        if not builder.is_prepared():
            logging.info("Preparing %s from %s into %s", cfg.name, local, data_dir)
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(local)))
        return builder
    try:
        builder = tfds.builder(cfg.name, data_dir=data_dir)
        if not builder.is_prepared():
            builder.download_and_prepare()
    except Exception as e:  # TFDS raises many types when offline or misnamed.
        raise _unavailable(cfg, local, f"TFDS: {type(e).__name__}: {str(e)[:200]}") from e
    return builder


def _as_arrays(builder, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    import tensorflow_datasets as tfds

    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    labels = data.get("label")
    return data["image"], (None if labels is None else np.asarray(labels))


def load_image_splits(cfg: ml_collections.ConfigDict, eval_split: str) -> ImageSplits:
    """Train and evaluation images; 'validation' is the last cfg.validation_size train examples."""
    builder = get_builder(cfg)
    n = builder.info.splits["train"].num_examples
    v = int(cfg.validation_size)
    if not 0 <= v < n:
        raise ConfigError(f"data.validation_size={v} must be in [0, {n}) for {cfg.name}")
    train_split = f"train[:{n - v}]" if v else "train"
    eval_splits = {"validation": f"train[{n - v}:]", "test": "test", "train": train_split}
    if eval_split == "validation" and v == 0:
        raise ConfigError("eval.split='validation' needs data.validation_size > 0")
    train, train_labels = _as_arrays(builder, train_split)
    evals, eval_labels = _as_arrays(builder, eval_splits[eval_split])
    features = builder.info.features
    num_classes = getattr(features["label"], "num_classes", None) if "label" in features else None
    return ImageSplits(
        _preprocess(train, cfg.binarize), _preprocess(evals, cfg.binarize),
        train_labels, eval_labels, num_classes,
    )  # fmt: skip


def _preprocess(images: np.ndarray, binarize: str) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; 'threshold' binarizes at 0.5 ('dynamic' happens per step)."""
    x = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 and images.max() > 1 else 1.0)
    if binarize == "threshold":
        x = (x > 0.5).astype(np.float32)
    return x
