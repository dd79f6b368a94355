import errno
import random
import shutil
import tarfile
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision

from geovae_core import ExperimentConfig
from geovae_core.data import CIFAR10_CLASSES, binarized, experiment_split, load_dataset
from geovae_core.errors import CacheNotWritableError, DatasetChecksumError, DatasetNotFoundError

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
    assert f"GEOVAE_DATA={fresh / 'empty'} does not exist." in message  # the folder itself is missing
    assert "\n" not in message
    assert not (fresh / "cache" / "downloads").exists()  # the failed download leaves no empty folder


def test_a_data_root_that_exists_but_lacks_the_files_is_not_called_missing(fresh, monkeypatch):
    (fresh / "root").mkdir()
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("mnist")
    assert "does not exist" not in str(error.value) and str(fresh / "root" / "MNIST" / "raw") in str(error.value)


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
    with pytest.raises(DatasetNotFoundError, match="'svhn' is unknown; known: mnist, fashion_mnist, cifar10, celeba"):
        load_dataset("svhn")


def test_binarisation_is_fixed_and_binary():
    images = torch.rand(10, 1, 4, 4)
    once, again = binarized(images), binarized(images)
    assert torch.equal(once, again) and set(once.unique().tolist()) <= {0.0, 1.0}
    assert abs(once.mean().item() - images.mean().item()) < 0.1


def test_the_split_takes_the_configured_subsets():
    config = ExperimentConfig(model="shallow_mlp", train_size=300, test_size=50, binarize=True)
    x_train, y_train, x_test, y_test = experiment_split(config)
    assert (len(x_train), len(y_train), len(x_test), len(y_test)) == (300, 300, 50, 50)
    assert set(x_train.unique().tolist()) == {0.0, 1.0}


def _jpegs(folder: Path, names, size=(40, 50)):
    from PIL import Image

    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        Image.new("RGB", size, (10 * i % 255, 100, 200)).save(folder / name)


def test_celeba_from_a_folder_of_jpegs_split_by_the_partition_file(fresh, monkeypatch):
    root = fresh / "root"
    names = [f"{i:06d}.jpg" for i in range(1, 8)]
    _jpegs(root / "celeba" / "img_align_celeba", names)
    partitions = ["0", "0", "1", "0", "2", "2", "0"]
    (root / "celeba" / "list_eval_partition.txt").write_text(
        "\r\n".join(f"{n} {p}" for n, p in zip(names, partitions)) + "\r\n"
    )
    monkeypatch.setenv("GEOVAE_DATA", str(root))
    data = load_dataset("celeba")
    # partition 0 trains; 1 (validation) and 2 (test) are held out
    assert data.train_images.shape == (4, 3, 64, 64) and data.test_images.shape == (3, 3, 64, 64)
    assert data.train_labels.tolist() == [-1] * 4 and data.classes == ()
    assert data.test_images[0, 0].mean().item() == pytest.approx(20 / 255, abs=0.01)  # image 3's red level
    assert len(list((fresh / "cache" / "data").glob("celeba64-*.pt"))) == 1


def test_celeba_without_a_partition_file_keeps_the_last_tenth_for_testing(fresh, monkeypatch):
    _jpegs(fresh / "root" / "img_align_celeba", [f"{i:06d}.jpg" for i in range(20)], size=(64, 64))
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    data = load_dataset("celeba")
    assert (len(data.train_images), len(data.test_images)) == (18, 2)


def test_missing_celeba_says_what_was_looked_for(fresh, monkeypatch):
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "empty"))
    with pytest.raises(
        DatasetNotFoundError, match=r"celeba: expected aligned JPEGs in .*empty/celeba/img_align_celeba"
    ):
        load_dataset("celeba")


def _cifar_batches(folder: Path, n_per_batch=4):
    import pickle

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for filename, _ in torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list:
        batch = {
            "data": torch.randint(0, 256, (n_per_batch, 3072), generator=g, dtype=torch.uint8).numpy(),
            "labels": list(range(n_per_batch)),
        }
        with open(folder / filename, "wb") as handle:
            pickle.dump(batch, handle)


def test_cifar10_path_on_generated_cifar_shaped_batches(fresh, monkeypatch):
    _generated_batches_that_pass(monkeypatch, fresh / "root" / "cifar-10-batches-py")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    loaded = load_dataset("cifar10")
    assert loaded.train_images.shape == (20, 3, 32, 32) and loaded.test_images.shape == (4, 3, 32, 32)
    assert loaded.train_labels[:4].tolist() == [0, 1, 2, 3] and loaded.classes[0] == "airplane"
    assert loaded.source == "CIFAR-10" and (fresh / "cache" / "data" / "cifar10.pt").is_file()
    config = ExperimentConfig(
        model="conv",
        dataset="cifar10",
        widths=(4, 8, 16),
        latent_dim=3,
        activation="relu",
        init_std=None,
        epochs=1,
        batch_size=8,
    )
    from geovae_core import train

    assert train(config, progress=False).history[0]["test_loss"] > 0


def test_cifar10_with_real_checksums_rejects_generated_batches(fresh, monkeypatch):
    _cifar_batches(fresh / "root" / "cifar-10-batches-py")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    with pytest.raises(DatasetChecksumError, match="cifar10: .*data_batch_1 has md5"):
        load_dataset("cifar10")


def test_missing_cifar10_names_the_pickles_and_the_jpeg_archive_and_where_they_were_looked_for(fresh, monkeypatch):
    monkeypatch.setattr(
        torchvision.datasets.CIFAR10, "download", lambda self: (_ for _ in ()).throw(OSError("offline"))
    )
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "empty"))
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset("cifar10")
    message, empty, downloads = str(error.value), fresh / "empty", fresh / "cache" / "downloads"
    assert message.startswith("cifar10: expected data_batch_1, ") and "\n" not in message
    assert f"test_batch in {empty / 'cifar-10-batches-py'}, {downloads / 'cifar-10-batches-py'}, or " in message
    assert f"cifar-10-jpeg.tar.gz in {empty / 'cifar-10-jpeg'}, {downloads / 'cifar-10-jpeg'}; " in message
    assert message.endswith("Set GEOVAE_DATA to a folder that holds cifar-10-batches-py/ or cifar-10-jpeg/.")


def _cifar_jpeg_archive(monkeypatch, root: Path, per_class=(3, 2)) -> Path:
    """SOURCES.md §5's layout, ``per_class`` (train, test) images of each class, each a flat colour:
    red 20 x its class, green 40 x its rank by name, blue 100 in train and 200 in test; archived
    in a shuffled order, and its md5 made the one the loader expects."""
    from PIL import Image

    from geovae_core.data import _md5

    files = root / "files"
    for split, count in zip(("train", "test"), per_class):
        for label, name in enumerate(CIFAR10_CLASSES):
            (files / split / name).mkdir(parents=True)
            for rank in range(count):
                colour = (20 * label, 40 * rank, 100 if split == "train" else 200)
                Image.new("RGB", (32, 32), colour).save(files / split / name / f"{rank:04d}.jpg")
    archive = root / "cifar-10-jpeg" / "cifar-10-jpeg.tar.gz"
    archive.parent.mkdir(parents=True)
    members = sorted(files.rglob("*.jpg"))
    random.Random(0).shuffle(members)
    with tarfile.open(archive, "w:gz") as tar:
        for path in members:
            tar.add(path, arcname=path.relative_to(files).as_posix())
    shutil.rmtree(files)
    monkeypatch.setattr("geovae_core.data.CIFAR10_JPEG_ARCHIVE", ("cifar-10-jpeg.tar.gz", _md5(archive)))
    return archive


def test_cifar10_from_the_jpeg_archive_in_a_fixed_order_cached_and_named_as_the_jpeg_copy(fresh, monkeypatch, capsys):
    _cifar_jpeg_archive(monkeypatch, fresh / "root")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    loaded = load_dataset("cifar10")
    assert loaded.source == "CIFAR-10 (JPEG copy)" and loaded.classes == CIFAR10_CLASSES
    assert loaded.train_images.shape == (30, 3, 32, 32) and loaded.test_images.shape == (20, 3, 32, 32)
    # one of each class in turn, each class's files by name, whatever the archive's order
    assert loaded.train_labels.tolist() == list(range(10)) * 3 and loaded.test_labels.tolist() == list(range(10)) * 2
    colours = (loaded.train_images.mean(dim=(2, 3)) * 255).round()
    assert colours[:, 0].tolist() == pytest.approx([20.0 * c for c in range(10)] * 3, abs=3)
    assert colours[:, 1].tolist() == pytest.approx([40.0 * (i // 10) for i in range(30)], abs=3)
    assert colours[:, 2].tolist() == pytest.approx([100.0] * 30, abs=3)
    assert (fresh / "cache" / "data" / "cifar10-jpeg.pt").is_file() and "decoding cifar10" in capsys.readouterr().err
    load_dataset.cache_clear()
    monkeypatch.setattr("geovae_core.data._decode_cifar10_jpegs", lambda folder: pytest.fail("decoded twice"))
    again = load_dataset("cifar10")
    assert torch.equal(again.train_images, loaded.train_images) and again.source == "CIFAR-10 (JPEG copy)"
    assert capsys.readouterr().err == ""


def _generated_batches_that_pass(monkeypatch, folder: Path) -> None:
    from geovae_core.data import _md5

    _cifar_batches(folder)
    tv = torchvision.datasets.CIFAR10
    monkeypatch.setattr(tv, "train_list", [[f, _md5(folder / f)] for f, _ in tv.train_list])
    monkeypatch.setattr(tv, "test_list", [[f, _md5(folder / f)] for f, _ in tv.test_list])


def test_cifar10_pickles_that_pass_the_md5_check_win_over_the_jpeg_archive(fresh, monkeypatch):
    _cifar_jpeg_archive(monkeypatch, fresh / "root")
    _generated_batches_that_pass(monkeypatch, fresh / "root" / "cifar-10-batches-py")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    loaded = load_dataset("cifar10")
    assert loaded.source == "CIFAR-10" and loaded.train_images.shape == (20, 3, 32, 32)
    assert [p.name for p in (fresh / "cache" / "data").iterdir()] == ["cifar10.pt"]


def test_cifar10_pickles_that_fail_the_md5_check_give_way_to_the_jpeg_archive_saying_so(fresh, monkeypatch, capsys):
    _cifar_jpeg_archive(monkeypatch, fresh / "root")
    _cifar_batches(fresh / "root" / "cifar-10-batches-py")  # torchvision's real md5s: these fail them
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    assert load_dataset("cifar10").source == "CIFAR-10 (JPEG copy)"
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith("cifar10: ") and "data_batch_1 has md5" in line
    assert line.endswith(f"; reading the JPEG copy in {fresh / 'root' / 'cifar-10-jpeg'} instead")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _flip_a_pixel_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the training images: torch.load alone would not notice
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason", [(_truncate, "BadZipFile"), (_flip_a_pixel_byte, "CRC-32 mismatch")])
def test_a_damaged_decoded_cache_is_named_set_aside_and_decoded_again(fresh, monkeypatch, capsys, damage, reason):
    monkeypatch.setenv("GEOVAE_DATA", str(_shared_data()))
    original = load_dataset("mnist")
    assert capsys.readouterr().err.startswith(f"decoding mnist: paid once per cache ({fresh / 'cache'})\n")
    cached = fresh / "cache" / "data" / "mnist.pt"
    damage(cached)
    damaged_bytes = cached.read_bytes()
    load_dataset.cache_clear()
    again = load_dataset("mnist")
    line, *decoding = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mnist: decoded cache {cached} is damaged (") and reason in line
    assert len(decoding) == 2 and decoding[0].startswith("decoding mnist: paid once per cache")
    assert line.endswith("decoding again") and torch.equal(again.train_images, original.train_images)
    moved = list((cached.parent / "damaged").iterdir())
    assert len(moved) == 1 and str(moved[0]) in line and moved[0].read_bytes() == damaged_bytes
    load_dataset.cache_clear()
    assert torch.equal(load_dataset("mnist").test_images, original.test_images) and capsys.readouterr().err == ""


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_celeba_jpeg_stops_with_one_line_naming_it(fresh, monkeypatch, damage):
    images = fresh / "root" / "celeba" / "img_align_celeba"
    _jpegs(images, [f"{i:06d}.jpg" for i in range(1, 6)])
    bad = images / "000003.jpg"
    bad.write_bytes(bad.read_bytes()[:200] if damage == "truncated" else b"not a jpeg at all")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    with pytest.raises(DatasetChecksumError) as error:
        load_dataset("celeba")
    message = str(error.value)
    assert message.startswith(f"celeba: {bad} cannot be decoded") and message.endswith("the image is damaged")
    assert "\n" not in message and not list((fresh / "cache").rglob("*.pt"))


def _shared_celeba_subset(root: Path, count: int = 6) -> list:
    """The first ``count`` of the shared aligned CelebA JPEGs, with the shared MD5SUMS beside the root."""
    shared = _shared_data() / "celeba" / "img_align_celeba"
    names = sorted(p.name for p in shared.glob("*.jpg"))[:count]
    (root / "celeba" / "img_align_celeba").mkdir(parents=True)
    for name in names:
        shutil.copy(shared / name, root / "celeba" / "img_align_celeba" / name)
    shutil.copy(_shared_data() / "MD5SUMS", root / "MD5SUMS")
    return names


def test_celeba_images_are_checked_against_md5sums_in_the_data_root(fresh, monkeypatch):
    names = _shared_celeba_subset(fresh / "root")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    assert len(load_dataset("celeba").train_images) + len(load_dataset("celeba").test_images) == len(names)
    load_dataset.cache_clear()
    shutil.rmtree(fresh / "cache")
    flipped = fresh / "root" / "celeba" / "img_align_celeba" / names[2]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01  # a JPEG with one flipped bit still decodes: only the md5 tells
    flipped.write_bytes(bytes(data))
    with pytest.raises(DatasetChecksumError) as error:
        load_dataset("celeba")
    message = str(error.value)
    assert message.startswith(f"celeba: {flipped} has md5 ") and str(fresh / "root" / "MD5SUMS") in message
    assert "\n" not in message and not list((fresh / "cache").rglob("*.pt"))


def test_celeba_md5sums_beside_the_images_are_used_too(fresh, monkeypatch):
    images = fresh / "root" / "img_align_celeba"
    _jpegs(images, [f"{i:06d}.jpg" for i in range(1, 6)])
    from geovae_core.data import _md5

    (images / "MD5SUMS").write_text(
        "".join(f"{_md5(images / n)}  {n}\n" for n in sorted(p.name for p in images.glob("*.jpg")))
    )
    (images / "000004.jpg").write_bytes((images / "000004.jpg").read_bytes() + b"\0")
    monkeypatch.setenv("GEOVAE_DATA", str(fresh / "root"))
    with pytest.raises(DatasetChecksumError, match=r"celeba: .*img_align_celeba/000004.jpg has md5 .*expected"):
        load_dataset("celeba")


def test_binarisation_samples_each_pixel_with_its_intensity_as_probability():
    """Bernoulli(intensity), not a threshold at 0.5: a grey of 0.3 becomes 30 % white pixels."""
    grey = binarized(torch.full((200, 1, 28, 28), 0.3))
    assert set(grey.unique().tolist()) == {0.0, 1.0}
    assert grey.mean().item() == pytest.approx(0.3, abs=0.01)
    light = binarized(torch.full((200, 1, 28, 28), 0.7))
    assert light.mean().item() == pytest.approx(0.7, abs=0.01)
    ramp = torch.linspace(0, 1, 11).repeat(5000, 1)  # each column one intensity, 5000 draws each
    drawn = binarized(ramp)
    assert drawn[:, 0].max() == 0 and drawn[:, -1].min() == 1  # black stays black, white white
    assert torch.allclose(drawn.mean(dim=0), torch.linspace(0, 1, 11), atol=0.03)
    assert not torch.equal(binarized(ramp, seed=1), drawn)  # the seed picks the draw


# --- a cache without room for the decoded dataset ----------------------------------------------


MNIST_DECODED_MB = 53  # 70,000 images of 28 x 28 bytes and their labels


def _mnist_into(monkeypatch, cache: Path):
    monkeypatch.setenv("GEOVAE_DATA", str(_shared_data()))
    monkeypatch.setenv("GEOVAE_CACHE", str(cache))


def test_a_disk_without_room_for_the_decoded_dataset_says_so_in_one_line_and_leaves_nothing(fresh, monkeypatch):
    from geovae_core import storage

    _mnist_into(monkeypatch, fresh / "new" / "cache")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 40 * 2**20))
    with pytest.raises(CacheNotWritableError) as error:
        load_dataset("mnist")
    assert str(error.value) == (
        f"mnist: the decoded dataset ({MNIST_DECODED_MB} MB) cannot be kept: no space left in "
        f"{fresh / 'new' / 'cache' / 'data'}: 40 MB free, 66 MB needed; free some space there or set GEOVAE_CACHE "
        "to a folder with room"
    )
    assert not (fresh / "new").exists()  # not even the folders the write would have made


def _torch_writing_onto_a_full_disk(monkeypatch):
    """torch.save, its writes failing with ENOSPC after the first: torch's own RuntimeError then hides it."""
    real_save = torch.save

    class FullDisk:
        def __init__(self, stream):
            self.stream, self.written = stream, 0

        def write(self, chunk):
            if self.written:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(chunk)
            return self.stream.write(chunk)

        def flush(self):
            self.stream.flush()

    monkeypatch.setattr(torch, "save", lambda obj, stream: real_save(obj, FullDisk(stream)))


def test_a_disk_that_fills_while_the_decoded_dataset_is_written_is_said_as_such_not_as_torch_s_error(
    fresh, monkeypatch
):
    _mnist_into(monkeypatch, fresh / "cache")
    (fresh / "cache" / "data").mkdir(parents=True)
    (fresh / "cache" / "data" / "other.pt").write_bytes(b"another dataset")
    _torch_writing_onto_a_full_disk(monkeypatch)
    with pytest.raises(RuntimeError, match="enforce fail"):  # what torch says, without the check
        torch.save({"x": torch.zeros(10)}, open(fresh / "probe", "wb"))
    with pytest.raises(CacheNotWritableError) as error:
        load_dataset("mnist")
    message = str(error.value)
    assert message == (
        f"mnist: the decoded dataset ({MNIST_DECODED_MB} MB) cannot be kept: no space left in "
        f"{fresh / 'cache' / 'data'}; free some space there or set GEOVAE_CACHE to a folder with room"
    )
    assert [p.name for p in (fresh / "cache").rglob("*")] == ["data", "other.pt"]  # no partial file; its folder kept


def test_a_cache_that_cannot_be_written_says_so_in_one_line(fresh, monkeypatch):
    (fresh / "a-file").write_text("not a folder")
    _mnist_into(monkeypatch, fresh / "a-file" / "cache")
    with pytest.raises(CacheNotWritableError) as error:
        load_dataset("mnist")
    message = str(error.value)
    assert message.startswith(f"mnist: the decoded dataset ({MNIST_DECODED_MB} MB) cannot be kept: NotADirectoryError")
    assert message.endswith("; set GEOVAE_CACHE to a writable folder") and "\n" not in message
