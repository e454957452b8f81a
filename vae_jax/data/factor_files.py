"""Readers for the files the ground-truth-factor datasets ship as, in their original formats.

- Shapes3D: DeepMind's `3dshapes.h5` (HDF5: `images` uint8 [480000, 64, 64, 3] in the
  row-major order of the six factors; `labels` holds their float values).
- MPI3D: `mpi3d_{toy,realistic,real}.npz` (`images` uint8 [N, 64, 64, 3], row-major factor order).
- Cars3D: one MATLAB file per car (`*.mat`, variable `im` [H, W, 3, 24 azimuths, 4 elevations]).
- SmallNORB: the NYU binary-matrix files `smallnorb-<chunk>-{dat,cat,info}.mat[.gz]` (not
  MATLAB files despite the name: a magic number, the rank, the dims, then the data).

Each loader returns (images uint8 [N, 64, 64, C], labels int [N, K]) with labels as
disentanglement_lib defines the factors (`data/ground_truth/{shapes3d,mpi3d,cars3d,norb}.py`).
"""

import gzip
import os
from pathlib import Path

import numpy as np

from vae_jax.errors import DataError

# The NYU binary-matrix type codes (https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/).
_NORB_DTYPES = {
    0x1E3D4C51: np.dtype("<f4"), 0x1E3D4C53: np.dtype("<f8"), 0x1E3D4C54: np.dtype("<i4"),
    0x1E3D4C55: np.dtype("u1"), 0x1E3D4C56: np.dtype("<i2"),
}  # fmt: skip
SMALLNORB_CHUNKS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_norb_matrix(path: str | os.PathLike) -> np.ndarray:
    """Reads a NYU binary-matrix file (optionally gzipped) with its shape and dtype."""
    path = Path(path)
    with _open(path) as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "little") if len(data) >= 8 else None
    if magic not in _NORB_DTYPES:
        raise DataError(f"{path} is not a NORB binary-matrix file (magic {data[:4]!r})")
    ndim = int.from_bytes(data[4:8], "little")
    dims = np.frombuffer(data, "<i4", ndim, 8)
    offset = 8 + 4 * max(3, ndim)  # the header holds at least three dims
    dtype = _NORB_DTYPES[magic]
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - offset != expected:
        raise DataError(f"{path} is truncated or corrupt: dims {dims.tolist()} need {expected} bytes")
    return np.frombuffer(data, dtype, offset=offset).reshape(tuple(dims)).astype(dtype.newbyteorder("="))


def resize_to_64(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] or [N, H, W, 3] -> [N, 64, 64, C], PIL's Lanczos filter as disentanglement_lib."""
    from PIL import Image

    if images.shape[1:3] == (64, 64):
        return images if images.ndim == 4 else images[..., None]
    out = np.stack([np.asarray(Image.fromarray(im).resize((64, 64), Image.LANCZOS)) for im in images])
    return out if out.ndim == 4 else out[..., None]


def grid_labels(num: int, sizes, path) -> np.ndarray:
    """Factor indices [num, K] of images stored in the row-major order of the factor grid."""
    if num != int(np.prod(sizes)):
        raise DataError(f"{path} holds {num} images; the factor grid {list(sizes)} has {int(np.prod(sizes))}")
    return np.stack(np.unravel_index(np.arange(num), tuple(sizes)), axis=1)


def load_shapes3d_h5(path: Path, sizes) -> tuple[np.ndarray, np.ndarray]:
    """3dshapes.h5 -> (images [480000, 64, 64, 3], labels [480000, 6])."""
    try:
        import h5py
    except ImportError as e:
        raise DataError(f"reading {path} needs h5py: pip install h5py") from e
    with h5py.File(path, "r") as f:
        if "images" not in f:
            raise DataError(f"{path} has no 'images' dataset (keys: {list(f)})")
        images = np.asarray(f["images"][()], np.uint8)
    return images, grid_labels(len(images), sizes, path)


def load_mpi3d_npz(path: Path, sizes_by_count: dict) -> tuple[np.ndarray, np.ndarray, tuple]:
    """mpi3d_*.npz -> (images, labels, factor sizes); the sizes follow from the image count."""
    with np.load(path) as data:
        if "images" not in data:
            raise DataError(f"{path} has no 'images' array (keys: {list(data)})")
        images = np.asarray(data["images"], np.uint8)
    sizes = sizes_by_count.get(len(images))
    if sizes is None:
        raise DataError(f"{path} holds {len(images)} images; MPI3D grids hold {sorted(sizes_by_count)}")
    return images, grid_labels(len(images), sizes, path), sizes


def load_cars3d_mats(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """One .mat per car -> (images [4 * 24 * cars, 64, 64, 3], labels (elevation, azimuth, car))."""
    from scipy import io

    images, labels = [], []
    for car, path in enumerate(paths):
        try:
            im = io.loadmat(path)["im"]  # [H, W, 3, 24 azimuths, 4 elevations]
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{path} is not a Cars3D .mat file with an 'im' array ({e})") from e
        if im.ndim != 5 or im.shape[2:] != (3, 24, 4):
            raise DataError(f"{path}: 'im' has shape {im.shape}, expected [H, W, 3, 24, 4]")
        views = np.einsum("abcde->deabc", im).reshape(-1, *im.shape[:3])  # row j: azimuth j//4, elevation j%4
        images.append(resize_to_64(np.asarray(views, np.uint8)))
        j = np.arange(len(views))
        labels.append(np.stack([j % 4, j // 4, np.full_like(j, car)], axis=1))
    return np.concatenate(images), np.concatenate(labels)


def smallnorb_paths(directory: Path) -> dict[tuple[str, str], Path | None]:
    """(chunk, part) -> the file (plain or .gz) in directory, None where missing."""
    found = {}
    for chunk in SMALLNORB_CHUNKS:
        for part in ("dat", "cat", "info"):
            stem = directory / f"smallnorb-{chunk}-{part}.mat"
            gz = stem.with_name(stem.name + ".gz")
            found[chunk, part] = stem if stem.is_file() else gz if gz.is_file() else None
    return found


def load_smallnorb(paths: dict) -> tuple[np.ndarray, np.ndarray]:
    """Both chunks -> (images [N, 64, 64, 1], labels (category, instance, elevation, azimuth, lighting))."""
    images, labels = [], []
    for chunk in SMALLNORB_CHUNKS:
        dat = read_norb_matrix(paths[chunk, "dat"])  # [N, 2, 96, 96]: two cameras; the first is used
        cat = read_norb_matrix(paths[chunk, "cat"]).reshape(-1)  # [N]
        info = read_norb_matrix(paths[chunk, "info"]).astype(
            np.int64
        )  # [N, 4]: instance, elevation, azimuth, light
        if not len(dat) == len(cat) == len(info) or dat.ndim != 4 or info.shape[1:] != (4,):
            raise DataError(
                f"SmallNORB {chunk}: dat {dat.shape}, cat {cat.shape}, info {info.shape} disagree"
            )
        info[:, 2] //= 2  # azimuths are stored as 0, 2, ..., 34
        images.append(resize_to_64(np.ascontiguousarray(dat[:, 0], np.uint8)))
        labels.append(np.column_stack([cat, info]))
    return np.concatenate(images), np.concatenate(labels)
