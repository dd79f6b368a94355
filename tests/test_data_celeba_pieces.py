"""Two pieces of the CelebA loader on images made here: the centre square it crops (and the RGB it
hands on), and the MD5SUMS it checks images against. (``test_data.py`` loads whole folders.)"""

import hashlib

import numpy as np
import pytest
from PIL import Image

from geovae_core.data import _center_square, _check_md5sums
from geovae_core.errors import DatasetChecksumError


def _numbered(width: int, height: int, by: str) -> Image.Image:
    """A grey image whose every row (``by="row"``) or column holds its own index as its value."""
    index = np.arange(height if by == "row" else width, dtype=np.uint8)
    values = np.repeat(index[:, None], width, 1) if by == "row" else np.repeat(index[None, :], height, 0)
    return Image.fromarray(values, mode="L")


@pytest.mark.parametrize("width, height, by", [(40, 51, "row"), (51, 40, "column"), (40, 40, "row")])
def test_the_centre_square_is_cut_from_the_middle_and_comes_out_rgb(width, height, by):
    square = _center_square(_numbered(width, height, by), 40)  # no resize: the crop itself
    assert square.shape == (40, 40, 3) and square.dtype == np.uint8
    offset = (max(width, height) - 40) // 2  # 5 of the 11 spare rows (or columns) above, 6 below
    line = square[:, 0, 0] if by == "row" else square[0, :, 0]
    assert line.tolist() == list(range(offset, offset + 40))
    assert (square[..., 0] == square[..., 1]).all() and (square[..., 1] == square[..., 2]).all()


def test_the_centre_square_is_resized_to_the_size_asked_for():
    image = Image.fromarray(np.full((50, 40, 3), 200, dtype=np.uint8))
    assert _center_square(image, 16).shape == (16, 16, 3) and (_center_square(image, 16) == 200).all()


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_md5sums_lines_name_files_with_spaces_and_the_binary_marker(tmp_path):
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    for name in ("000001.jpg", "0000 02.jpg"):
        (folder / name).write_bytes(name.encode())
    sums = {name: _md5(folder / name) for name in ("000001.jpg", "0000 02.jpg")}
    (folder / "MD5SUMS").write_text(f"{sums['000001.jpg']}  *000001.jpg\n\n{sums['0000 02.jpg']}  0000 02.jpg\n")
    _check_md5sums(folder, ["000001.jpg", "0000 02.jpg"], None)  # both listed, both intact
    for name in ("000001.jpg", "0000 02.jpg"):
        original = (folder / name).read_bytes()
        (folder / name).write_bytes(b"flipped")
        with pytest.raises(DatasetChecksumError, match=f"{name} has md5"):
            _check_md5sums(folder, [name], None)
        (folder / name).write_bytes(original)


def test_md5sums_of_a_data_root_that_does_not_hold_the_images_is_not_read(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "cache" / "celeba"
    root.mkdir()
    elsewhere.mkdir(parents=True)
    (elsewhere / "000001.jpg").write_bytes(b"an image")
    (root / "MD5SUMS").write_text("0123456789abcdef0123456789abcdef  celeba/000001.jpg\n")
    _check_md5sums(elsewhere, ["000001.jpg"], root)  # the root's list speaks of the root's own images
    (elsewhere.parent / "MD5SUMS").write_text("0123456789abcdef0123456789abcdef  celeba/000001.jpg\n")
    with pytest.raises(DatasetChecksumError):  # the parent's does
        _check_md5sums(elsewhere, ["000001.jpg"], root)


class _TorchvisionCelebA:
    """A stand-in for torchvision.datasets.CelebA with all its files present: each split's names."""

    calls = []
    names = {"train": ["000001.jpg", "000002.jpg"], "test": ["182638.jpg"]}

    def __init__(self, root, split="train", download=True):
        _TorchvisionCelebA.calls.append((root, split, download))
        self.filename = list(self.names[split])


def test_torchvision_s_split_is_used_when_its_files_are_all_there(tmp_path, monkeypatch):
    import torchvision

    from geovae_core.data import _celeba_files

    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torchvision.datasets, "CelebA", _TorchvisionCelebA)
    _TorchvisionCelebA.calls.clear()
    folder, train, test = _celeba_files(tmp_path / "root")
    assert folder == tmp_path / "root" / "celeba" / "img_align_celeba"
    assert (train, test) == (["000001.jpg", "000002.jpg"], ["182638.jpg"])
    assert _TorchvisionCelebA.calls == [(tmp_path / "root", "train", False), (tmp_path / "root", "test", False)]


def _faces(folder, names):
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((218, 178, 3), 20 * i, dtype=np.uint8)).save(folder / name)


@pytest.mark.parametrize("held_out, n_test", [("0", 0), ("2", 1)])
def test_celeba_s_held_out_faces_follow_the_partition_and_carry_no_label(tmp_path, monkeypatch, held_out, n_test):
    from geovae_core.data import load_dataset

    names = ["000001.jpg", "000002.jpg", "000003.jpg"]
    _faces(tmp_path / "root" / "celeba" / "img_align_celeba", names)
    (tmp_path / "root" / "celeba" / "list_eval_partition.txt").write_text(
        f"000001.jpg 0\n000002.jpg 0\n000003.jpg {held_out}\n"
    )
    monkeypatch.setenv("GEOVAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GEOVAE_DATA", str(tmp_path / "root"))
    load_dataset.cache_clear()
    try:
        data = load_dataset("celeba")
    finally:
        load_dataset.cache_clear()
    assert data.train_images.shape == (3 - n_test, 3, 64, 64) and data.test_images.shape == (n_test, 3, 64, 64)
    assert data.train_labels.tolist() == [-1] * (3 - n_test) and data.test_labels.tolist() == [-1] * n_test


def test_a_data_root_that_is_missing_or_a_file_is_named_in_one_clause(tmp_path):
    from geovae_core.data import _missing_root

    a_file = tmp_path / "data.tar"
    a_file.write_text("")
    assert _missing_root(None) == "" and _missing_root(tmp_path) == ""
    assert _missing_root(tmp_path / "nowhere") == f" GEOVAE_DATA={tmp_path / 'nowhere'} does not exist."
    assert _missing_root(a_file) == f" GEOVAE_DATA={a_file} does not exist (it is a file)."
