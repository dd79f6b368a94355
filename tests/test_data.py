import shutil
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from geovae_core import ExperimentConfig
from geovae_core.data import binarized, experiment_split, load_dataset
from geovae_core.errors import DatasetChecksumError, DatasetNotFoundError

MNIST_FILES = [f for f, _ in torchvision.datasets.MNIST.resources]


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty cache, no download possible, and load_dataset's memo cleared."""
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))

    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    load_dataset.cache_clear()
    yield tmp_path
    load_dataset.cache_clear()


def _shared_data() -> Path:
    import os
    return Path(os.environ["GEOVAE_DATA"])


def test_mnist_loads_whole_into_memory_from_the_read_only_root(fresh, monkeypatch):
    monkeypatch.setenv("GEOVAE_DATA", str(_shared_data()))
    data = load_dataset("mnist")
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_images.shape == (10000, 1, 28, 28)
    assert data.train_images.dtype == torch.float32 and 0 <= data.train_images.min() < data.train_images.max() <= 1
    assert data.train_labels[:5].tolist() == [5, 0, 4, 1, 9] and data.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert (fresh / "cache" / "data" / "mnist.pt").is_file()
    load_dataset.cache_clear()
    assert torch.equal(load_dataset("mnist").test_images, data.test_images)  # from the decoded cache


def test_a_missing_dataset_names_the_dataset_the_folder_and_the_files(fresh, monkeypatch):
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "empty"))
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("mnist")
    message = str(error.value)
    assert message.startswith("mnist: expected ") and str(fresh / "empty" / "MNIST" / "raw") in message
    assert all(name in message for name in MNIST_FILES) and "download failed" in message
    assert "\n" not in message


def test_a_corrupted_archive_is_a_checksum_error_and_leaves_nothing_behind(fresh, monkeypatch):
    raw = fresh / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        shutil.copy(_shared_data() / "MNIST" / "raw" / name, raw / name)
    (raw / MNIST_FILES[1]).write_bytes(b"\x1f\x8b not the labels")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    with pytest.raises(DatasetChecksumError, match=f"{MNIST_FILES[1]} has md5 .*corrupted"):
        load_dataset("mnist")
    cache = fresh / "cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_an_unknown_dataset_lists_the_known_ones(fresh):
    with pytest.raises(DatasetNotFoundError, match="'svhn' is unknown; known: mnist, fashion_mnist"):
        load_dataset("svhn")


def test_binarisation_is_fixed_and_binary():
    images = torch.rand(10, 1, 4, 4)
    once, again = binarized(images), binarized(images)
    assert torch.equal(once, again) and set(once.unique().tolist()) <= {0.0, 1.0}
    assert abs(once.mean().item() - images.mean().item()) < 0.1


def test_the_split_takes_the_configured_subsets():
    config = ExperimentConfig(model="kth", train_size=300, test_size=50, binarize=True)
    x_train, y_train, x_test, y_test = experiment_split(config)
    assert (len(x_train), len(y_train), len(x_test), len(y_test)) == (300, 300, 50, 50)
    assert set(x_train.unique().tolist()) == {0.0, 1.0}
