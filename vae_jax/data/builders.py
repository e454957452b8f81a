"""The TFDS builder of the offline image sources: MNIST-like idx files in a local directory.

Local files enter through TFDS's manual-download mechanism
(`DownloadConfig(manual_dir=...)`), so they get the same splits, features and
preparation (and split slicing such as 'train[:55000]') as catalog datasets.
"""

import tensorflow_datasets as tfds

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
