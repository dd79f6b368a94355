"""The download path of the loaders, without a network: torchvision's download is replaced by a
copy of the shared archives (what it would have fetched), or by a failure. (``test_data.py``
holds the loaders reading archives that are already there.)"""

import gzip
import os
import shutil
import urllib.error
from pathlib import Path

import pytest
import torchvision

from geovae_core.data import load_dataset
from geovae_core.errors import DatasetNotFoundError

SHARED_RAW = Path(os.environ.get("GEOVAE_DATA", "")) / "MNIST" / "raw"


@pytest.fixture
def empty_root(monkeypatch, tmp_path):
    """A data root without MNIST, an empty cache, and load_dataset's memo cleared."""
    if not SHARED_RAW.is_dir():
        pytest.skip(f"needs MNIST's archives in $GEOVAE_DATA ({SHARED_RAW} not found)")
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "root").mkdir()
    monkeypatch.setenv("GEOVAE_DATA", str(tmp_path / "root"))
    load_dataset.cache_clear()
    yield tmp_path
    load_dataset.cache_clear()


def _fetch_from_the_shared_archives(self):
    """What torchvision's MNIST.download leaves in its raw folder: the archives and their contents."""
    raw = Path(self.raw_folder)
    raw.mkdir(parents=True, exist_ok=True)
    for name, _ in self.resources:
        shutil.copy(SHARED_RAW / name, raw / name)
        with gzip.open(raw / name) as packed:
            (raw / name.removesuffix(".gz")).write_bytes(packed.read())


def test_a_dataset_missing_from_the_root_is_downloaded_into_the_cache_and_read_from_there(empty_root, monkeypatch):
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", _fetch_from_the_shared_archives)
    data = load_dataset("mnist")
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    fetched = empty_root / "cache" / "downloads" / "MNIST" / "raw"
    assert sorted(p.name for p in fetched.glob("*.gz")) == sorted(n for n, _ in torchvision.datasets.MNIST.resources)
    assert not any((empty_root / "root").iterdir())  # the data root is only read


def test_a_failed_download_keeps_the_cache_s_earlier_downloads(empty_root, monkeypatch):
    earlier = empty_root / "cache" / "downloads" / "cifar-10-batches-py"
    earlier.mkdir(parents=True)
    (earlier / "data_batch_1").write_bytes(b"fetched before")

    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(DatasetNotFoundError, match=r"download failed \(URLError\)"):
        load_dataset("mnist")
    assert (earlier / "data_batch_1").read_bytes() == b"fetched before"
