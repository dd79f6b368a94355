"""Datasets as in-memory tensors, from verified archives or torchvision's download.

Where files are looked for, in order:
1. the data root, ``$GEOVAE_DATA`` (or the ``root`` argument): laid out as torchvision
   expects (``<root>/MNIST/raw/*.gz``); it may be read-only, nothing is written there;
2. ``<cache>/downloads``, where torchvision's own loader downloads when online.

Archives are checked against torchvision's md5 list, decoded straight from the ``.gz``
files, and the decoded tensors are cached once under ``$GEOVAE_CACHE/data`` with an
atomic write: an interrupted run leaves nothing half-written behind.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

from .errors import DatasetChecksumError, DatasetNotFoundError
from .storage import atomic_torch_save, cache_dir

# name -> (torchvision class, folder under the root, class names)
IDX_DATASETS = {
    "mnist": (torchvision.datasets.MNIST, "MNIST", tuple(str(d) for d in range(10))),
    "fashion_mnist": (
        torchvision.datasets.FashionMNIST,
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


@dataclass(frozen=True)
class ImageDataset:
    """A whole dataset in memory: images float32 [N, C, H, W] in [0, 1], labels int64."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple

    @property
    def image_shape(self) -> tuple:
        return tuple(self.train_images.shape[1:])


def data_root() -> Path | None:
    """The user's data root, ``$GEOVAE_DATA``, or None."""
    root = os.environ.get("GEOVAE_DATA")
    return Path(root).expanduser() if root else None


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_idx_gz(path: Path) -> np.ndarray:
    """Decode an IDX file (LeCun's MNIST format) from its gzip archive."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_archives(name: str, root: Path | None) -> dict:
    """Map each archive torchvision expects to its path, downloading if none is found."""
    tv_class, folder, _ = IDX_DATASETS[name]
    candidates = [c for c in (root, cache_dir() / "downloads") if c is not None]
    for base in candidates:
        for where in (base / folder / "raw", base / folder, base):
            paths = {f: where / f for f, _ in tv_class.resources}
            if all(p.is_file() for p in paths.values()):
                return paths
    expected = ", ".join(f for f, _ in tv_class.resources)
    searched = ", ".join(str(c / folder / "raw") for c in candidates)
    download_root = cache_dir() / "downloads"
    try:
        tv_class(root=download_root, train=True, download=True)
    except Exception as error:  # offline, refused, or torchvision's own md5 failure
        raise DatasetNotFoundError(
            f"{name}: expected {expected} in {searched}; download failed "
            f"({type(error).__name__}). Set GEOVAE_DATA to a folder that holds {folder}/raw/."
        ) from None
    return {f: download_root / folder / "raw" / f for f, _ in tv_class.resources}


def _decode(name: str, root: Path | None) -> dict:
    tv_class, _, _ = IDX_DATASETS[name]
    paths = _find_archives(name, root)
    for filename, md5 in tv_class.resources:
        found = _md5(paths[filename])
        if found != md5:
            raise DatasetChecksumError(
                f"{name}: {paths[filename]} has md5 {found}, expected {md5}: the archive is corrupted"
            )
    arrays = {f: _read_idx_gz(p) for f, p in paths.items()}
    files = [f for f, _ in tv_class.resources]
    return {
        "train_images": torch.from_numpy(arrays[files[0]].copy()).unsqueeze(1),
        "train_labels": torch.from_numpy(arrays[files[1]].astype(np.int64)),
        "test_images": torch.from_numpy(arrays[files[2]].copy()).unsqueeze(1),
        "test_labels": torch.from_numpy(arrays[files[3]].astype(np.int64)),
    }


@functools.lru_cache(maxsize=4)
def load_dataset(name: str, root: str | None = None) -> ImageDataset:
    """Load ``name`` ("mnist", "fashion_mnist") whole into memory, decoding it at most once."""
    if name not in IDX_DATASETS:
        raise DatasetNotFoundError(f"dataset {name!r} is unknown; known: {', '.join(IDX_DATASETS)}")
    root_path = Path(root) if root else data_root()
    cached = cache_dir() / "data" / f"{name}.pt"
    if cached.is_file():
        tensors = torch.load(cached)
    else:
        tensors = _decode(name, root_path)
        atomic_torch_save(tensors, cached)
    as_float = {k: (v.float() / 255.0 if k.endswith("images") else v) for k, v in tensors.items()}
    return ImageDataset(name=name, classes=IDX_DATASETS[name][2], **as_float)


def binarized(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Binarise once by sampling each pixel from Bernoulli(intensity), with a fixed seed
    (the dynamically-sampled-once binarisation of Salakhutdinov & Murray, 2008)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(images, generator=generator)


def experiment_split(config) -> tuple:
    """The (train_x, train_y, test_x, test_y) tensors an experiment config asks for."""
    data = load_dataset(config.dataset)
    parts = [data.train_images, data.train_labels, data.test_images, data.test_labels]
    if config.binarize:
        parts[0], parts[2] = binarized(parts[0]), binarized(parts[2], seed=1)
    if config.train_size is not None:
        parts[0], parts[1] = parts[0][: config.train_size], parts[1][: config.train_size]
    if config.test_size is not None:
        parts[2], parts[3] = parts[2][: config.test_size], parts[3][: config.test_size]
    return tuple(p.to(config.device) for p in parts)
