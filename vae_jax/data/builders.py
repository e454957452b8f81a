"""TFDS builders for the offline sources: local idx files and procedural dSprites.

Local files enter through TFDS's manual-download mechanism
(`DownloadConfig(manual_dir=...)`), so they get the same splits, features and
preparation (and split slicing such as 'train[:55000]') as catalog datasets.
"""

import numpy as np
import tensorflow_datasets as tfds

from vae_jax.data import dsprites
from vae_jax.data.idx import IDX_FILES, find_idx_file, read_idx
from vae_jax.errors import DataError

IDX_DATASETS = {
    "mnist": 10,
    "fashion_mnist": 10,
    "kmnist": 10,
    "emnist_letters": 26,
}


class LocalIdx(tfds.core.GeneratorBasedBuilder):
    """MNIST-like datasets read from the four original idx files in a local directory."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name) for name in IDX_DATASETS]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] in one directory "
        "and pass it as --config.data.local_dir."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(num_classes=IDX_DATASETS[self.builder_config.name]),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        directory = dl_manager.manual_dir
        splits = {}
        for split, stems in IDX_FILES.items():
            paths = [find_idx_file(directory, stem) for stem in stems]
            missing = [s for s, p in zip(stems, paths, strict=True) if p is None]
            if missing:
                raise FileNotFoundError(f"{directory} lacks {missing}")
            splits[split] = self._generate_examples(*paths)
        return splits

    def _generate_examples(self, images_path, labels_path):
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"{images_path}: expected [N, 28, 28] images matching {len(labels)} labels")
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            yield i, {"image": image[..., None], "label": int(label)}


class DspritesConfig(tfds.core.BuilderConfig):
    """`position_stride` > 1 keeps every k-th position (a smaller grid for quick tests)."""

    def __init__(self, *, position_stride: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.position_stride = position_stride


class DspritesProcedural(tfds.core.GeneratorBasedBuilder):
    """Procedural dSprites with its five factors as features; one 'train' split."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        DspritesConfig(name="full", description="the original 737,280-image grid"),
        DspritesConfig(name="coarse8", position_stride=8, description="positions 0, 8, 16, 24"),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        features = {"image": tfds.features.Image(shape=(64, 64, 1))}
        for name, size in zip(dsprites.FACTOR_NAMES, dsprites.FACTOR_SIZES, strict=True):
            features[name] = tfds.features.ClassLabel(num_classes=size)
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self, chunk: int = 4096):
        stride = self.builder_config.position_stride
        sizes = list(dsprites.FACTOR_SIZES)
        grids = [np.arange(s) for s in sizes[:3]] + [np.arange(0, s, stride) for s in sizes[3:]]
        factors = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, 5)
        for start in range(0, len(factors), chunk):
            block = factors[start : start + chunk]
            images = dsprites.render(block)
            for f, image in zip(block, images, strict=True):
                key = int(np.ravel_multi_index(tuple(f), sizes))
                record = {"image": image}
                record.update({n: int(v) for n, v in zip(dsprites.FACTOR_NAMES, f, strict=True)})
                yield key, record
