"""Shapes3D, SmallNORB, Cars3D and MPI3D as ground-truth-factor sources (`FactorTable`s).

Where the data comes from (`config.data.source`):
- 'local': the original files in `config.data.local_dir` (see `factor_files`);
- 'tfds': the TFDS builder (`shapes3d`, `smallnorb`; TFDS has no Cars3D or MPI3D),
  prepared in `config.data.data_dir`, or downloaded there (needs the network);
- 'auto': the local files if `local_dir` holds them, else the TFDS builder if it is
  already prepared in `data_dir`. 'auto' never downloads: offline, TFDS retries for
  minutes before it fails.

Factors as in disentanglement_lib. All four are full grids when complete, so their
observations are exact; SmallNORB's instance is a nuisance factor drawn at random
(as there), and an incomplete set (e.g. TFDS mock data) falls back to the nearest
available factor combination (`FactorTable`). A dataset that cannot be found raises
one `DatasetUnavailableError` naming it, where it looked and how to get it, before
anything is read.
"""

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vae_jax.data import factor_files
from vae_jax.data.factor_table import FactorTable
from vae_jax.errors import DataError, DatasetUnavailableError


@dataclasses.dataclass(frozen=True)
class Spec:
    """A file-backed dataset: its factors, the files it needs and where to get them."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    files: str  # what local_dir must hold, in words
    get: str  # how to get the files
    latent: tuple[int, ...] | None = None  # None: all factors are latent
    tfds_name: str | None = None


MPI3D_SIZES = {  # image count -> factor sizes (6 colours x 6 shapes in the released files)
    6 * 6 * 2 * 3 * 3 * 40 * 40: (6, 6, 2, 3, 3, 40, 40),
    4 * 4 * 2 * 3 * 3 * 40 * 40: (4, 4, 2, 3, 3, 40, 40),  # disentanglement_lib's early mpi3d_toy
}
SPECS = {
    "shapes3d": Spec(
        ("floor_color", "wall_color", "object_color", "object_size", "object_type", "azimuth"),
        (10, 10, 10, 8, 4, 15), "3dshapes.h5",
        "download https://storage.googleapis.com/3d-shapes/3dshapes.h5 (github.com/deepmind/3d-shapes)",
        tfds_name="shapes3d",
    ),
    "smallnorb": Spec(
        ("category", "instance", "elevation", "azimuth", "lighting"), (5, 10, 9, 18, 6),
        "the six smallnorb-5x*-{dat,cat,info}.mat[.gz] files of both chunks",
        "download them from https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",
        latent=(0, 2, 3, 4), tfds_name="smallnorb",
    ),
    "cars3d": Spec(
        ("elevation", "azimuth", "object_type"), (4, 24, 183), "the 183 per-car *.mat files",
        "download nips2015-analogy-data.tar.gz from http://www.scottreed.info/ (Reed et al. 2015) "
        "and unpack it (its data/cars/ holds them)",
    ),
    "mpi3d": Spec(
        ("object_color", "object_shape", "object_size", "camera_height", "background_color",
         "first_dof", "second_dof"),
        (6, 6, 2, 3, 3, 40, 40), "one of mpi3d_toy.npz, mpi3d_realistic.npz, mpi3d_real.npz",
        "download from https://github.com/rr-learning/disentanglement_dataset",
    ),
}  # fmt: skip

TFDS_LABELS = {  # the TFDS features of each factor, in SPECS order
    "shapes3d": [
        f"label_{k}" for k in ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    ],
    "smallnorb": ["label_category", "instance", "label_elevation", "label_azimuth", "label_lighting"],
}


def _find_local(name: str, directory: Path | None):
    """The local files of dataset `name` in directory, or None when they are not all there."""
    if directory is None or not directory.is_dir():
        return None
    if name == "shapes3d":
        path = directory / "3dshapes.h5"
        return path if path.is_file() else None
    if name == "smallnorb":
        paths = factor_files.smallnorb_paths(directory)
        return paths if all(paths.values()) else None
    if name == "cars3d":
        return sorted(directory.glob("*.mat")) or None
    found = sorted(directory.glob("mpi3d_*.npz"))
    if len(found) > 1:
        raise DataError(f"{directory} holds several MPI3D files {[p.name for p in found]}; keep one there")
    return found[0] if found else None


def _unavailable(name: str, local: Path | None, data_dir: str, reason: str) -> DatasetUnavailableError:
    spec = SPECS[name]
    where = "no local directory (config.data.local_dir is unset)"
    if local:
        where = f"config.data.local_dir={str(local)!r} (for {spec.files})"
    if spec.tfds_name:
        where += f" and the TFDS builder {spec.tfds_name!r} in data_dir {data_dir!r}"
    hint = f"{spec.get}, then pass --config.data.local_dir=DIR, the directory that holds {spec.files}"
    if spec.tfds_name:
        hint += f"; or, with network access, --config.data.source=tfds to let TFDS prepare {spec.tfds_name!r}"
    return DatasetUnavailableError(
        f"dataset {name!r} is not available: looked in {where} ({reason}). To fix: {hint}"
    )


def _from_local(name: str, found) -> FactorTable:
    spec = SPECS[name]
    names, sizes = spec.factor_names, spec.factor_sizes
    if name == "shapes3d":
        images, labels = factor_files.load_shapes3d_h5(found, sizes)
    elif name == "smallnorb":
        images, labels = factor_files.load_smallnorb(found)
    elif name == "cars3d":
        images, labels = factor_files.load_cars3d_mats(found)
        sizes = (*sizes[:2], len(found))  # one object type per file: 183 in the release
        if len(found) != spec.factor_sizes[2]:
            logging.warning("cars3d: %d .mat files, the release has %d", len(found), spec.factor_sizes[2])
    else:
        images, labels, sizes = factor_files.load_mpi3d_npz(found, MPI3D_SIZES)
    return FactorTable(name, images, labels, names, sizes, latent=spec.latent)


def _tfds_arrays(
    name: str, data_dir: str, local: Path | None, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of TFDS's `name`, prepared in data_dir (or downloaded there if `download`)."""
    import tensorflow_datasets as tfds

    spec = SPECS[name]
    try:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
        if not builder.is_prepared():
            if not download:
                raise _unavailable(name, local, data_dir, "the files are missing; TFDS has not prepared it")
            builder.download_and_prepare()
        split = "train+test" if name == "smallnorb" else "train"
        # Batches of 4096 rather than batch_size=-1, which TFDS sizes from the split metadata.
        batches = list(tfds.as_numpy(builder.as_dataset(split=split).batch(4096)))
        data = {k: np.concatenate([b[k] for b in batches]) for k in ("image", *TFDS_LABELS[name])}
    except DatasetUnavailableError:
        raise
    except Exception as e:  # TFDS raises many types when offline.
        raise _unavailable(name, local, data_dir, f"TFDS: {type(e).__name__}: {str(e)[:200]}") from e
    labels = np.stack([np.asarray(data[k], np.int64) for k in TFDS_LABELS[name]], axis=1)
    images = np.asarray(data["image"], np.uint8)
    if name == "smallnorb":
        images = factor_files.resize_to_64(images[..., 0])
    return images, labels


def load_factor_dataset(name: str, data_config=None) -> FactorTable:
    """The file-backed ground-truth source `name` ('shapes3d', 'smallnorb', 'cars3d', 'mpi3d').

    Args:
      name: a key of SPECS.
      data_config: `config.data` (fields local_dir, source, data_dir); None: defaults.
    """
    cfg = data_config if data_config is not None else {}
    local = Path(cfg.get("local_dir")).expanduser() if cfg.get("local_dir") else None
    source = cfg.get("source") or "auto"
    data_dir = str(Path(cfg.get("data_dir") or "~/tensorflow_datasets").expanduser())
    spec = SPECS[name]
    found = _find_local(name, local) if source != "tfds" else None
    if found is not None:
        logging.info("Loading %s from %s", name, local)
        return _from_local(name, found)
    if source == "local" or spec.tfds_name is None:
        reason = "source='local'" if source == "local" else "TFDS has no builder for it"
        raise _unavailable(name, local, data_dir, f"the files are missing; {reason}")
    images, labels = _tfds_arrays(name, data_dir, local, download=source == "tfds")
    return FactorTable(name, images, labels, spec.factor_names, spec.factor_sizes, latent=spec.latent)


FACTOR_DATASETS: dict[str, Callable] = {
    name: (lambda data_config=None, name=name: load_factor_dataset(name, data_config)) for name in SPECS
}
