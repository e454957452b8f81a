"""Data: the idx reader, the TFDS builders on generated files, dSprites, batching, errors."""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import common
from tests.helpers import write_idx
from vae_jax import data as data_lib
from vae_jax.data import dsprites, pipeline
from vae_jax.data.idx import read_idx
from vae_jax.data.sources import load_image_splits
from vae_jax.errors import DatasetUnavailableError


def test_idx_roundtrip_and_corruption(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x-idx3-ubyte.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "x-idx3-ubyte.gz"), a)
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "rb") as f:
        raw = f.read()
    (tmp_path / "cut-idx3-ubyte").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut-idx3-ubyte")
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "junk")


def _data_config(idx_dir, tfds_dir, **kw):
    c = common.base_config()
    c.data.name = "mnist"
    c.data.source = "local"
    c.data.local_dir = str(idx_dir)
    c.data.data_dir = tfds_dir
    c.data.update(kw)
    return c


@pytest.mark.slow
def test_local_idx_goes_through_tfds_builder(idx_dir, tfds_dir):
    c = _data_config(idx_dir, tfds_dir, validation_size=50)
    splits = load_image_splits(c.data, "validation")
    assert splits.train.shape == (250, 28, 28, 1) and splits.eval.shape == (50, 28, 28, 1)
    assert splits.train.dtype == np.float32 and 0.0 <= splits.train.min() and splits.train.max() <= 1.0
    assert splits.num_classes == 10
    raw = read_idx(idx_dir / "train-images-idx3-ubyte.gz")
    raw_labels = read_idx(idx_dir / "train-labels-idx1-ubyte.gz")
    # Same examples as the files (TFDS may reorder; match by content via labels and sums).
    pixels = np.round(np.concatenate([splits.train, splits.eval]) * 255).astype(int)
    labels = np.concatenate([splits.train_labels, splits.eval_labels])
    got = sorted(zip(labels.tolist(), pixels.sum((1, 2, 3)).tolist(), strict=True))
    want = sorted(zip(raw_labels.tolist(), raw.astype(int).sum((1, 2)).tolist(), strict=True))
    assert got == want
    assert any(Path(tfds_dir).rglob("dataset_info.json"))  # prepared by TFDS


@pytest.mark.slow
def test_threshold_binarization(idx_dir, tfds_dir):
    splits = load_image_splits(_data_config(idx_dir, tfds_dir, binarize="threshold").data, "test")
    assert set(np.unique(splits.train)) <= {0.0, 1.0}


def test_missing_dataset_message_says_what_to_do(tmp_path, tfds_dir):
    c = _data_config(tmp_path / "nowhere", tfds_dir, name="fashion_mnist")
    with pytest.raises(DatasetUnavailableError) as e:
        load_image_splits(c.data, "test")
    msg = str(e.value)
    assert "fashion_mnist" in msg and str(tmp_path / "nowhere") in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--config.data.local_dir" in msg


def test_an_image_dataset_without_tfds_says_what_to_install(tmp_path, tfds_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import raises ImportError
    c = _data_config(tmp_path / "nowhere", tfds_dir, name="fashion_mnist")
    with pytest.raises(DatasetUnavailableError, match="TensorFlow Datasets.*pip install -e .*dsprites"):
        load_image_splits(c.data, "test")


def test_batches_are_deterministic_resumable_and_sharded():
    images = np.arange(100, dtype=np.float32)[:, None]
    full = pipeline.array_batch_fn(images, 10, seed=3)
    again = pipeline.array_batch_fn(images, 10, seed=3)
    other = pipeline.array_batch_fn(images, 10, seed=4)
    np.testing.assert_array_equal(full(7), again(7))
    assert not np.array_equal(full(7), other(7))
    epoch = np.concatenate([full(s) for s in range(10)]).ravel()
    assert sorted(epoch.tolist()) == list(range(100))  # each example once per epoch
    halves = [pipeline.array_batch_fn(images, 10, 3, process_index=p, process_count=2)(7) for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), full(7))
    resumed = pipeline.prefetch(full, start_step=5)
    np.testing.assert_array_equal(next(resumed), full(5))
    np.testing.assert_array_equal(next(resumed), full(6))
    resumed.close()


def test_dsprites_ground_truth_interface():
    gt = data_lib.get_ground_truth_data("dsprites")
    assert gt.factor_names == ("shape", "scale", "orientation", "position_x", "position_y")
    assert tuple(gt.factor_sizes) == (3, 6, 40, 32, 32) and gt.num_examples == 737_280
    rng = np.random.default_rng(0)
    factors = gt.sample_factors(50, rng)
    assert factors.shape == (50, 5) and (factors < np.array(gt.factor_sizes)).all()
    x = gt.sample_observations_from_factors(factors, rng)
    assert x.shape == (50, 64, 64, 1) and set(np.unique(x)) <= {0.0, 1.0}
    assert (x.sum((1, 2, 3)) > 10).all()  # every sprite is visible
    # Scale grows the sprite; position moves its centre of mass.
    base = np.array([[0, 0, 0, 16, 16], [0, 5, 0, 16, 16], [0, 0, 0, 0, 16], [0, 0, 0, 31, 16]])
    im = dsprites.render(base)[..., 0].astype(float)
    assert im[1].sum() > 3 * im[0].sum()
    cols = np.arange(64)
    assert (im[2].sum(0) @ cols) / im[2].sum() < 20 < 44 < (im[3].sum(0) @ cols) / im[3].sum()
    with pytest.raises(ValueError, match="out of range"):
        dsprites.render(np.array([[3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="no ground-truth"):
        data_lib.get_ground_truth_data("cars4d")
