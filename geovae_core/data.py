"""Datasets as in-memory tensors, from verified archives or torchvision's download.

Where files are looked for, in order:
1. the data root, ``$GEOVAE_DATA`` (or the ``root`` argument): laid out as torchvision
   expects (``<root>/MNIST/raw/*.gz``, ``<root>/cifar-10-batches-py/``, ``<root>/celeba/``),
   plus ``<root>/cifar-10-jpeg/cifar-10-jpeg.tar.gz``; it may be read-only, nothing is written there;
2. ``<cache>/downloads``, where torchvision's own loader downloads when online.

MNIST, FashionMNIST and CIFAR-10 files are checked against torchvision's md5 lists and
decoded straight from the archives. Where CIFAR-10's pickles are absent or fail that check,
the JPEG copy of SOURCES.md §5 (checked against its md5) is decoded instead, and the loaded
dataset's ``source`` says "CIFAR-10 (JPEG copy)". CelebA comes from torchvision's class when
all its files are there, otherwise from a folder of aligned JPEGs (``img_align_celeba/``, split
by ``list_eval_partition.txt`` when present), centre-cropped and resized once; when an
``MD5SUMS`` file (lines ``md5  relative/path``) lies beside the images, in their parent or in
the data root, the images are checked against it first. The decoded tensors are cached under
``$GEOVAE_CACHE/data`` with an atomic write: an interrupted run leaves nothing half-written
behind, a cache without room says so in one line, and a damaged file there is set aside in
``data/damaged/`` and decoded again.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import os
import pickle
import shutil
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torchvision
from PIL import Image

from .errors import CacheNotWritableError, DatasetChecksumError, DatasetNotFoundError
from .storage import (
    atomic_torch_save,
    cache_dir,
    check_space,
    describe,
    load_checked,
    no_space_error,
    paid_once,
    set_aside,
)

# name -> (torchvision class, folder under the root, class names)
IDX_DATASETS = {
    "mnist": (torchvision.datasets.MNIST, "MNIST", tuple(str(d) for d in range(10))),
    "fashion_mnist": (
        torchvision.datasets.FashionMNIST,
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_JPEG_FOLDER = "cifar-10-jpeg"
CIFAR10_JPEG_ARCHIVE = ("cifar-10-jpeg.tar.gz", "1305e62a50e4706d19c8747004d1d1a2")  # (file, md5): SOURCES.md §5
CELEBA_SIZE = 64
DATASETS = (*IDX_DATASETS, "cifar10", "celeba")


@dataclass(frozen=True)
class ImageDataset:
    """A whole dataset in memory: images float32 [N, C, H, W] in [0, 1], labels int64
    (all -1 where the dataset has no labels, as CelebA here). ``source`` is the data as a page
    names it beside the numbers computed on it: "MNIST", "FashionMNIST", "CIFAR-10", "CelebA",
    or "CIFAR-10 (JPEG copy)" where CIFAR-10 was decoded from SOURCES.md §5's JPEG files,
    whose pixels differ from the official ones by JPEG rounding (empty for a dataset built by hand)."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple
    source: str = ""

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


def _verify(name: str, folder: Path, checksums) -> None:
    for filename, md5 in checksums:
        found = _md5(folder / filename)
        if found != md5:
            raise DatasetChecksumError(
                f"{name}: {folder / filename} has md5 {found}, expected {md5}: the archive is corrupted"
            )


def _bases(root: Path | None) -> list:
    """Where files are looked for, in order: the data root, then the download cache."""
    return [b for b in (root, cache_dir() / "downloads") if b is not None]


def _find(root: Path | None, subfolders, filenames) -> Path | None:
    """The first folder under the data root or the download cache that holds every file, or None."""
    for base in _bases(root):
        for sub in subfolders:
            if all((base / sub / f).is_file() for f in filenames):
                return base / sub
    return None


def _download(name: str, root: Path | None, wanted, download) -> Path:
    """Try torchvision's download into the cache, or fail in one line naming what was looked
    for where; ``wanted``: the (folder, filenames) that would each have done, the download's first."""
    downloads = cache_dir() / "downloads"
    existed = downloads.exists()
    try:
        download(downloads)
    except Exception as error:  # offline, refused, or torchvision's own md5 failure
        if not existed:  # leave no empty folder behind
            shutil.rmtree(downloads, ignore_errors=True)
        looked = ", or ".join(
            f"{', '.join(files)} in {', '.join(str(b / folder) for b in _bases(root))}" for folder, files in wanted
        )
        raise DatasetNotFoundError(
            f"{name}: expected {looked}; download failed ({type(error).__name__}).{_missing_root(root)} "
            f"Set GEOVAE_DATA to a folder that holds {' or '.join(f'{folder}/' for folder, _ in wanted)}."
        ) from None
    return downloads / wanted[0][0]


def _missing_root(root: Path | None) -> str:
    """`` GEOVAE_DATA=<root> does not exist.`` when the data root is set to no folder, else nothing."""
    if root is None or root.is_dir():
        return ""
    return f" GEOVAE_DATA={root} does not exist{' (it is a file)' if root.exists() else ''}."


def _read_idx_gz(path: Path) -> np.ndarray:
    """Decode an IDX file (LeCun's MNIST format) from its gzip archive."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _decode_idx(name: str, root: Path | None) -> dict:
    tv_class, folder, _ = IDX_DATASETS[name]
    files = [f for f, _ in tv_class.resources]
    where = _find(root, [f"{folder}/raw", folder, "."], files) or _download(
        name, root, [(f"{folder}/raw", files)], lambda d: tv_class(root=d, train=True, download=True)
    )
    _verify(name, where, tv_class.resources)
    arrays = [_read_idx_gz(where / f) for f in files]
    return {
        "train_images": torch.from_numpy(arrays[0].copy()).unsqueeze(1),
        "train_labels": torch.from_numpy(arrays[1].astype(np.int64)),
        "test_images": torch.from_numpy(arrays[2].copy()).unsqueeze(1),
        "test_labels": torch.from_numpy(arrays[3].astype(np.int64)),
    }


@dataclass(frozen=True)
class _Source:
    """Where a dataset is decoded from: its name on the pages (``ImageDataset.source``), its
    decoded-tensor file in the cache, and the decoder."""

    title: str
    cache_file: str
    decode: Callable[[], dict]


def _cifar10_source(root: Path | None) -> _Source:
    """The official pickles when present and passing torchvision's md5 check; else the JPEG copy
    (SOURCES.md §5, which says to prefer the pickles); else the pickles by torchvision's download."""
    tv = torchvision.datasets.CIFAR10
    checksums = tv.train_list + tv.test_list
    pickle_files = [f for f, _ in checksums]
    pickles = _find(root, [tv.base_folder], pickle_files)
    jpegs = _find(root, [CIFAR10_JPEG_FOLDER], [CIFAR10_JPEG_ARCHIVE[0]])
    if pickles is not None:
        try:
            _verify("cifar10", pickles, checksums)
            return _Source("CIFAR-10", "cifar10.pt", lambda: _decode_cifar10_pickles(pickles))
        except DatasetChecksumError as damaged:
            if jpegs is None:
                raise
            print(f"{damaged}; reading the JPEG copy in {jpegs} instead", file=sys.stderr, flush=True)
    if jpegs is not None:
        _verify("cifar10", jpegs, [CIFAR10_JPEG_ARCHIVE])
        return _Source("CIFAR-10 (JPEG copy)", "cifar10-jpeg.pt", lambda: _decode_cifar10_jpegs(jpegs))

    wanted = [(tv.base_folder, pickle_files), (CIFAR10_JPEG_FOLDER, [CIFAR10_JPEG_ARCHIVE[0]])]
    return _Source(  # torchvision checks the md5 of what it downloads
        "CIFAR-10",
        "cifar10.pt",
        lambda: _decode_cifar10_pickles(_download("cifar10", root, wanted, lambda d: tv(root=d, download=True))),
    )


def _decode_cifar10_pickles(where: Path) -> dict:
    """torchvision's CIFAR-10 python batches: 5 training pickles and one test pickle."""
    tv = torchvision.datasets.CIFAR10

    def read(entries):
        images, labels = [], []
        for filename, _ in entries:
            with open(where / filename, "rb") as handle:
                batch = pickle.load(handle, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch["labels"])
        return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)

    (train_x, train_y), (test_x, test_y) = read(tv.train_list), read(tv.test_list)
    return {"train_images": train_x, "train_labels": train_y, "test_images": test_x, "test_labels": test_y}


def _decode_cifar10_jpegs(folder: Path) -> dict:
    """SOURCES.md §5's archive (its md5 checked) of ``train/<class>/NNNN.jpg`` and
    ``test/<class>/NNNN.jpg``, decoded with PIL in a fixed order: each class's files by name (the
    classes in torchvision's order, ``CIFAR10_CLASSES``; the folder gives the label), taken one
    from each class in turn, as the official batches mix the classes: a prefix (a config's
    ``train_size``) then holds all ten."""
    files = {split: [[] for _ in CIFAR10_CLASSES] for split in ("train", "test")}
    with tarfile.open(folder / CIFAR10_JPEG_ARCHIVE[0], "r|gz") as tar:
        for member in tar:
            if member.isfile():
                split, label, filename = PurePosixPath(member.name).parts
                files[split][CIFAR10_CLASSES.index(label)].append((filename, tar.extractfile(member).read()))
    tensors = {}
    for split, classes in files.items():
        for members in classes:
            members.sort()
        order = sorted((rank, label) for label, members in enumerate(classes) for rank in range(len(members)))
        jpegs = [classes[label][rank][1] for rank, label in order]
        images = np.stack([np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")) for jpeg in jpegs])
        tensors[f"{split}_images"] = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        tensors[f"{split}_labels"] = torch.tensor([label for _, label in order])
    return tensors


def _celeba_files(root: Path | None) -> tuple:
    """(image folder, train names, test names): torchvision's CelebA split when its files are
    all there, else ``list_eval_partition.txt`` (0: train; 1 and 2, validation and test: held
    out, so that a partial copy keeps enough held-out faces for the sample-quality protocol),
    else the last tenth."""
    bases = _bases(root)
    for base in bases:
        try:
            train = torchvision.datasets.CelebA(base, split="train", download=False)
            test = torchvision.datasets.CelebA(base, split="test", download=False)
            return base / "celeba" / "img_align_celeba", list(train.filename), list(test.filename)
        except Exception:  # RuntimeError when any of torchvision's files is missing
            pass
        for folder in (base / "celeba", base):
            images = folder / "img_align_celeba"
            if not images.is_dir():
                continue
            names = sorted(p.name for p in images.glob("*.jpg"))
            if not names:
                continue
            partition_file = folder / "list_eval_partition.txt"
            if partition_file.is_file():
                split = dict(line.split() for line in partition_file.read_text().splitlines() if line.strip())
                return (
                    images,
                    [n for n in names if split.get(n, "0") == "0"],
                    [n for n in names if split.get(n) in ("1", "2")],
                )
            cut = len(names) - max(1, len(names) // 10)
            return images, names[:cut], names[cut:]
    raise DatasetNotFoundError(
        "celeba: expected aligned JPEGs in "
        + ", ".join(str(b / "celeba" / "img_align_celeba") for b in bases)
        + " (torchvision's CelebA files, or a folder img_align_celeba/ of *.jpg)."
        + _missing_root(root)
        + " Set GEOVAE_DATA to a folder that holds celeba/img_align_celeba/."
    )


def _center_square(image: Image.Image, size: int) -> np.ndarray:
    """Centre-crop to a square (178 x 178 for aligned CelebA) and resize to ``size``."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = image.convert("RGB").crop((left, top, left + side, top + side))
    return np.asarray(square.resize((size, size), Image.BILINEAR, reducing_gap=2.0))


def _check_md5sums(folder: Path, names, root: Path | None) -> None:
    """Check the images against each ``MD5SUMS`` beside them, in their parent or in the data
    root (its paths are relative to its own folder); an image no such file lists is not checked."""
    places = {folder, folder.parent} | ({root} if root is not None and folder.is_relative_to(root) else set())
    for sums_file in sorted(p / "MD5SUMS" for p in places if (p / "MD5SUMS").is_file()):
        expected = {}
        for line in sums_file.read_text().splitlines():
            if line.strip():
                md5, relative = line.split(maxsplit=1)
                expected[relative.lstrip("*")] = md5
        for n in names:
            md5 = expected.get((folder / n).relative_to(sums_file.parent).as_posix())
            if md5 is not None and (found := _md5(folder / n)) != md5:
                raise DatasetChecksumError(
                    f"celeba: {folder / n} has md5 {found}, expected {md5} (from {sums_file}): the image is corrupted"
                )


def _decode_celeba(folder: Path, train: list, test: list, root: Path | None) -> dict:
    _check_md5sums(folder, train + test, root)

    def read(names):
        if not names:
            return torch.zeros(0, 3, CELEBA_SIZE, CELEBA_SIZE, dtype=torch.uint8)
        arrays = []
        for n in names:
            try:
                with Image.open(folder / n) as image:
                    arrays.append(_center_square(image, CELEBA_SIZE))
            except (OSError, SyntaxError, ValueError) as error:  # PIL's errors for a corrupt or truncated file
                raise DatasetChecksumError(
                    f"celeba: {folder / n} cannot be decoded ({describe(error)}): the image is damaged"
                ) from None
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    train_x, test_x = read(train), read(test)
    return {
        "train_images": train_x,
        "train_labels": torch.full((len(train_x),), -1),
        "test_images": test_x,
        "test_labels": torch.full((len(test_x),), -1),
    }


def _source(name: str, root: Path | None) -> _Source:
    """Where ``name`` is decoded from; CelebA's cache file also depends on which images were found."""
    if name in IDX_DATASETS:
        return _Source(IDX_DATASETS[name][1], f"{name}.pt", lambda: _decode_idx(name, root))
    if name == "cifar10":
        return _cifar10_source(root)
    folder, train, test = _celeba_files(root)
    listing = hashlib.sha256("\n".join([str(folder), *train, "|", *test]).encode()).hexdigest()[:12]
    return _Source("CelebA", f"celeba{CELEBA_SIZE}-{listing}.pt", lambda: _decode_celeba(folder, train, test, root))


@functools.lru_cache(maxsize=4)
def load_dataset(name: str, root: str | None = None) -> ImageDataset:
    """Load ``name`` (mnist, fashion_mnist, cifar10, celeba) whole into memory, decoding it
    at most once."""
    if name not in DATASETS:
        raise DatasetNotFoundError(f"dataset {name!r} is unknown; known: {', '.join(DATASETS)}")
    source = _source(name, Path(root) if root else data_root())
    cached = cache_dir() / "data" / source.cache_file
    tensors = _read_decoded(name, cached) if cached.is_file() else None
    if tensors is None:
        with paid_once(f"decoding {name}"):
            tensors = source.decode()
            _save_decoded(name, tensors, cached)
    as_float = {k: (v.float() / 255.0 if k.endswith("images") else v) for k, v in tensors.items()}
    classes = IDX_DATASETS[name][2] if name in IDX_DATASETS else CIFAR10_CLASSES if name == "cifar10" else ()
    return ImageDataset(name=name, classes=classes, source=source.title, **as_float)


def _save_decoded(name: str, tensors: dict, path: Path) -> None:
    """Write the decoded tensors into the cache atomically, once ``storage.check_space`` finds room;
    a cache without room (found first, or while writing, where torch hides it) or not writable
    fails in one line, leaving no file and no folder it created."""
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # deepest first
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_space(path.parent, size)
        atomic_torch_save(tensors, path)
    except (OSError, RuntimeError) as error:
        full = no_space_error(path.parent, error, size)
        for folder in created:
            with contextlib.suppress(OSError):  # not empty: another writer's file is there
                folder.rmdir()
        if not full and not isinstance(error, OSError):
            raise
        why = (
            f"{full}; free some space there or set GEOVAE_CACHE to a folder with room"
            if full
            else f"{describe(error)}; set GEOVAE_CACHE to a writable folder"
        )
        raise CacheNotWritableError(
            f"{name}: the decoded dataset ({size / 2**20:,.0f} MB) cannot be kept: {why}"
        ) from None


def _read_decoded(name: str, path: Path) -> dict | None:
    """The cached decoded tensors, or None once a damaged file has been set aside."""
    try:
        tensors = load_checked(path)
        return {key: tensors[key] for key in ("train_images", "train_labels", "test_images", "test_labels")}
    except Exception as error:
        moved = set_aside(path, path.parent / "damaged")
        print(
            f"{name}: decoded cache {path} is damaged ({describe(error)}); moved to {moved}, decoding again",
            file=sys.stderr,
            flush=True,
        )
        return None


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
