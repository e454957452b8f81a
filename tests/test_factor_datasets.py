"""Shapes3D, SmallNORB, Cars3D and MPI3D from tiny files in their real formats, TFDS mock data,
the lookup table, the missing-dataset message and the metrics on every ground-truth source.

Generated images encode their factors: band j of the image is the constant
255 * (v_j + 0.5) / size_j for factor value v_j, so `BandCodes` reads the factors
back from the pixels and a round-trip through files, resizing and lookup is exact.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow_datasets as tfds
from scipy import io

from experiments import common
from tests.helpers import write_norb_matrix
from vae_jax import data as data_lib
from vae_jax.data import factor_datasets, factor_files
from vae_jax.data.factor_table import FactorTable
from vae_jax.evaluate import disentanglement as dis

SHAPES3D_SMALL = (2, 2, 2, 2, 2, 3)
MPI3D_SMALL = (2, 2, 2, 2, 2, 2, 3)


def band_images(labels, sizes, side=64, channels=1):
    """uint8 [N, side, side, channels]: band j of the rows holds factor j's value."""
    labels, sizes = np.asarray(labels), np.asarray(sizes)
    values = np.round(255 * (labels + 0.5) / sizes).astype(np.uint8)  # [N, K]
    rows = np.minimum(np.arange(side) * len(sizes) // side, len(sizes) - 1)  # band of each row
    return np.broadcast_to(values[:, rows, None, None], (len(labels), side, side, channels)).copy()


class BandCodes:
    """Reads the factors [B, K] back from band images (the centre row of each band)."""

    def __init__(self, sizes):
        self.sizes = np.asarray(sizes)

    def __call__(self, images):
        k = len(self.sizes)
        centre = ((np.arange(k) + 0.5) * images.shape[1] / k).astype(int)
        return np.floor(images[:, centre, 32, 0] * self.sizes).astype(np.float64)  # [B, K]


def grid(sizes):
    return np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)


def _config(local_dir, tmp_path, source="auto"):
    c = common.base_config()
    c.data.local_dir, c.data.source, c.data.data_dir = str(local_dir), source, str(tmp_path / "tfds")
    return c.data


@pytest.fixture
def small_specs(monkeypatch):
    """Full Shapes3D and MPI3D grids are GBs: the same formats with smaller factor grids."""
    spec = dataclasses.replace(factor_datasets.SPECS["shapes3d"], factor_sizes=SHAPES3D_SMALL)
    monkeypatch.setitem(factor_datasets.SPECS, "shapes3d", spec)
    monkeypatch.setattr(factor_datasets, "MPI3D_SIZES", {int(np.prod(MPI3D_SMALL)): MPI3D_SMALL})


def write_shapes3d(directory):
    import h5py  # a declared dependency (pyproject): a missing one fails here, it is not skipped

    labels = grid(SHAPES3D_SMALL)
    with h5py.File(directory / "3dshapes.h5", "w") as f:
        f["images"] = band_images(labels, SHAPES3D_SMALL, channels=3)
        f["labels"] = labels / np.maximum(np.asarray(SHAPES3D_SMALL) - 1, 1)  # the file's float values


def write_mpi3d(directory):
    labels = grid(MPI3D_SMALL)
    np.savez(directory / "mpi3d_toy.npz", images=band_images(labels, MPI3D_SMALL, channels=3))


def write_cars3d(directory, cars=3, side=16):
    sizes = (4, 24, cars)
    for car in range(cars):
        el, az = np.meshgrid(np.arange(4), np.arange(24), indexing="ij")  # [4, 24]
        labels = np.stack([el.ravel(), az.ravel(), np.full(96, car)], axis=1)
        views = band_images(labels, sizes, side, 3).reshape(4, 24, side, side, 3)
        io.savemat(directory / f"car_{car:03d}_mesh.mat", {"im": np.einsum("deabc->abced", views)})
    return sizes


def write_smallnorb(directory, n=40, seed=0):
    """Both chunks, n examples each (not a full grid); one chunk gzipped, as NYU ships them."""
    rng = np.random.default_rng(seed)
    sizes = factor_datasets.SPECS["smallnorb"].factor_sizes
    written = []
    for chunk, ext in zip(factor_files.SMALLNORB_CHUNKS, (".mat", ".mat.gz"), strict=True):
        labels = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)  # category, instance, ...
        images = band_images(labels, sizes, side=96)[..., 0]  # [n, 96, 96]
        info = labels[:, 1:].copy()
        info[:, 2] *= 2  # azimuths are stored as 0, 2, ..., 34
        stem = directory / f"smallnorb-{chunk}-"
        write_norb_matrix(f"{stem}dat{ext}", np.stack([images, images], axis=1))
        write_norb_matrix(f"{stem}cat{ext}", labels[:, 0].astype(np.int32))
        write_norb_matrix(f"{stem}info{ext}", info.astype(np.int32))
        written.append(labels)
    return np.concatenate(written)


def test_norb_matrix_roundtrip_and_corruption(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_norb_matrix(tmp_path / "a.mat.gz", a)
    np.testing.assert_array_equal(factor_files.read_norb_matrix(tmp_path / "a.mat.gz"), a)
    write_norb_matrix(tmp_path / "v.mat", np.arange(5, dtype=np.int32))  # rank 1: 3 dims stored
    np.testing.assert_array_equal(factor_files.read_norb_matrix(tmp_path / "v.mat"), np.arange(5))
    (tmp_path / "cut.mat").write_bytes((tmp_path / "v.mat").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        factor_files.read_norb_matrix(tmp_path / "cut.mat")


@pytest.mark.parametrize("name", ["shapes3d", "mpi3d", "cars3d"])
def test_full_grid_sources_roundtrip_exactly(name, tmp_path, small_specs):
    sizes = {"shapes3d": SHAPES3D_SMALL, "mpi3d": MPI3D_SMALL}.get(name)
    if name == "cars3d":
        sizes = write_cars3d(tmp_path)
    else:
        {"shapes3d": write_shapes3d, "mpi3d": write_mpi3d}[name](tmp_path)
    gt = data_lib.get_ground_truth_data(name, _config(tmp_path, tmp_path))
    assert tuple(gt.factor_sizes) == sizes and len(gt.factor_names) == len(sizes)
    assert gt.full_grid and not gt.stochastic_observations and tuple(gt.observation_shape) == (64, 64, 3)
    factors = grid(sizes)  # every combination once
    x = gt.sample_observations_from_factors(factors)
    assert x.shape == (len(factors), 64, 64, 3) and x.dtype == np.float32 and x.max() <= 1.0
    np.testing.assert_array_equal(BandCodes(sizes)(x), factors)


def test_real_factor_names_and_sizes_are_disentanglement_libs():
    specs = factor_datasets.SPECS
    assert specs["shapes3d"].factor_sizes == (10, 10, 10, 8, 4, 15)
    assert specs["cars3d"].factor_sizes == (4, 24, 183)
    assert specs["smallnorb"].factor_sizes == (5, 10, 9, 18, 6) and specs["smallnorb"].latent == (0, 2, 3, 4)
    assert factor_datasets.MPI3D_SIZES[1_036_800] == (6, 6, 2, 3, 3, 40, 40)


def test_smallnorb_files_instance_is_a_nuisance_and_gaps_go_to_the_nearest(tmp_path):
    labels = write_smallnorb(tmp_path)
    gt = data_lib.get_ground_truth_data("smallnorb", _config(tmp_path, tmp_path, "local"))
    assert gt.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert tuple(gt.factor_sizes) == (5, 9, 18, 6) and tuple(gt.observation_shape) == (64, 64, 1)
    assert not gt.full_grid  # 80 images of a 4860-combination grid
    np.testing.assert_array_equal(np.sort(gt.labels, 0), np.sort(labels, 0))  # azimuth halved back
    latent = labels[:, [0, 2, 3, 4]]
    x = gt.sample_observations_from_factors(latent, np.random.default_rng(0))
    np.testing.assert_array_equal(BandCodes((5, 10, 9, 18, 6))(x)[:, [0, 2, 3, 4]], latent)
    # Missing combinations: the nearest present one in [0, 1]-scaled index space (numpy reference).
    rng = np.random.default_rng(1)
    asked = gt.sample_factors(200, rng)
    got = gt.labels[gt.rows_of(asked, rng)][:, [0, 2, 3, 4]]
    scale = np.array(gt.factor_sizes) - 1
    dist = (((asked[:, None] - latent[None]) / scale) ** 2).sum(-1)  # [200, 80]
    np.testing.assert_allclose(((got - asked) / scale) ** 2 @ np.ones(4), dist.min(1), atol=1e-12)


def test_factor_table_draws_nuisance_factors_uniformly():
    labels = np.array([[0, 0], [0, 1], [0, 2], [1, 0]])  # factor 0 latent, factor 1 a nuisance
    table = FactorTable("toy", band_images(labels, (2, 3)), labels, ("a", "b"), (2, 3), latent=[0])
    assert table.stochastic_observations and table.full_grid
    rows = table.rows_of(np.zeros((3000, 1), int), np.random.default_rng(0))
    np.testing.assert_allclose(np.bincount(rows, minlength=4) / 3000, [1 / 3, 1 / 3, 1 / 3, 0], atol=0.03)
    assert (table.rows_of(np.ones((5, 1), int), np.random.default_rng(0)) == 3).all()
    with pytest.raises(ValueError, match="needs an rng"):
        table.rows_of(np.zeros((1, 1), int))
    with pytest.raises(ValueError, match="out of range"):
        table.rows_of(np.array([[2]]), np.random.default_rng(0))


@pytest.mark.parametrize("name", ["shapes3d", "smallnorb"])
def test_tfds_builders_through_mock_data(name, tmp_path):
    with tfds.testing.mock_data(num_examples=30):
        gt = data_lib.get_ground_truth_data(name, _config(tmp_path / "empty", tmp_path, "tfds"))
    spec = factor_datasets.SPECS[name]
    assert tuple(gt.factor_sizes) == tuple(spec.factor_sizes[i] for i in gt.latent)
    assert tuple(gt.observation_shape) == ((64, 64, 3) if name == "shapes3d" else (64, 64, 1))
    assert len(gt.images) == 30 and gt.images.dtype == np.uint8
    latent = gt.labels[:, gt.latent]
    rng = np.random.default_rng(0)
    rows = gt.rows_of(latent, rng)
    np.testing.assert_array_equal(gt.labels[rows][:, gt.latent], latent)  # present combinations: exact
    x = gt.sample_observations_from_factors(latent, rng)
    np.testing.assert_allclose(x, gt.images[rows] / 255.0, atol=1e-7)


@pytest.mark.parametrize("name", list(factor_datasets.SPECS))
def test_missing_dataset_is_one_message_saying_where_and_how(name, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(data_lib.DatasetUnavailableError) as e:
        data_lib.get_ground_truth_data(name, _config(tmp_path / "empty", tmp_path))
    msg = str(e.value)
    assert f"'{name}'" in msg and str(tmp_path / "empty") in msg and "--config.data.local_dir" in msg
    assert "http" in msg and ("source=tfds" in msg) == (name in ("shapes3d", "smallnorb"))
    assert not (tmp_path / "tfds").exists() or not any((tmp_path / "tfds").rglob("*.h5"))  # no download


SMALL = {
    "beta_vae_score": {"num_train": 60, "num_eval": 60, "batch_size": 8},
    "factor_vae_score": {"num_train": 60, "num_eval": 60, "batch_size": 8, "num_variance_estimate": 300},
    "mig": {"num_train": 300},
    "dci": {"num_train": 300, "num_test": 150, "importance_model": "random_forest"},  # seconds, not minutes
    "sap": {"num_train": 300, "num_test": 150},
}


def _check_scores(scores):
    assert {"beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "sap"} <= scores.keys()
    assert all(np.isfinite(v) for v in scores.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shapes3d", "mpi3d", "cars3d"])
def test_metrics_end_to_end_on_file_sources(name, tmp_path, small_specs):
    sizes = write_cars3d(tmp_path) if name == "cars3d" else None
    if name != "cars3d":
        {"shapes3d": write_shapes3d, "mpi3d": write_mpi3d}[name](tmp_path)
        sizes = {"shapes3d": SHAPES3D_SMALL, "mpi3d": MPI3D_SMALL}[name]
    gt = data_lib.get_ground_truth_data(name, _config(tmp_path, tmp_path))
    protocols = {**SMALL, "beta_vae_score": {"num_train": 300, "num_eval": 150, "batch_size": 16}}
    scores = dis.compute_metrics(list(dis.METRICS), gt, BandCodes(sizes), grid_cache=False, **protocols)
    _check_scores(scores)
    # The codes read the factors off the pixels: only right if every observation shows its factors.
    assert scores["beta_vae_score"] > 0.95 and scores["factor_vae_score"] > 0.95
    assert scores["dci_disentanglement"] > 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name", ["color_dsprites", "noisy_dsprites", "textured_dsprites", "smallnorb"])
def test_metrics_end_to_end_on_stochastic_sources(name, tmp_path):
    if name == "smallnorb":
        write_smallnorb(tmp_path)
    gt = data_lib.get_ground_truth_data(name, _config(tmp_path, tmp_path))
    projection = np.random.default_rng(0).normal(size=(int(np.prod(gt.observation_shape)), 6))
    scores = dis.compute_metrics(list(dis.METRICS), gt, lambda x: x.reshape(len(x), -1) @ projection, **SMALL)
    _check_scores(scores)
    assert 0.0 <= scores["beta_vae_score"] <= 1.0 and 0.0 <= scores["mig"] <= 1.0


def test_config_names_validate_and_a_new_unset_field_does_not_block_resuming():
    from tests.helpers import load_config
    from vae_jax.train import validate, validate_config

    config = load_config("beta_vae", "smoke")
    for name in (
        "color_dsprites",
        "noisy_dsprites",
        "textured_dsprites",
        "shapes3d",
        "smallnorb",
        "cars3d",
        "mpi3d",
    ):
        config.data.name = name
        validate_config(config)
    saved = {"data": {"name": "dsprites"}, "seed": 0}
    assert (
        validate.config_differences(saved, {"data": {"name": "dsprites", "texture": None}, "seed": 0}) == []
    )
    assert validate.config_differences(saved, {"data": {"name": "dsprites", "texture": "a.png"}, "seed": 0})
