"""``folder:`` image sets: layouts, archives, colour modes, corrupt files, the decode cache; the real CIFAR-10 JPEG copy."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.errors import DataError
from tests.conftest import assert_clean_error, require_data, run_cli
from tests.data.helpers import png_bytes, write_folder, write_tar


def _image_set(rng, layout="split"):
    """name -> PNG bytes and name -> array, two classes, lossless so pixels can be compared."""
    files, arrays = {}, {}
    splits = ("train", "test") if layout == "split" else ("",)
    for split in splits:
        for cls, count in (("cats", 3), ("dogs", 2)):
            for i in range(count):
                array = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
                name = "/".join(p for p in (split, cls, f"{i:03d}.png") if p)
                files[name], arrays[name] = png_bytes(array), array
    files["README.txt"] = b"not an image: ignored"
    return files, arrays


@pytest.fixture
def image_set():
    return _image_set(np.random.default_rng(0))


def _check(data, arrays):
    assert data.class_names == ["cats", "dogs"]
    assert len(data.train) == 5 and len(data.test) == 5
    # Splits come in a fixed shuffled order: compare (image, label) pairs, not positions.
    expected = {arrays[n].tobytes(): (0 if "/cats/" in n else 1) for n in arrays if n.startswith("train/")}
    got = {x.tobytes(): int(y) for x, y in zip(data.train.x, data.train.y)}
    assert got == expected


def test_folder_tree(tmp_path, image_set):
    files, arrays = image_set
    write_folder(tmp_path / "pets", files)
    data = load_dataset(f"folder:{tmp_path / 'pets'}")
    _check(data, arrays)
    assert data.meta["ignored_files"] == 1


def test_folder_order_is_mixed_and_repeatable(tmp_path):
    """Files are read class by class; the split is interleaved so "first:10%" is not one class."""
    rng = np.random.default_rng(1)
    files = {
        f"train/{cls}/{i:03d}.png": png_bytes(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        for cls in ("a", "b", "c", "d")
        for i in range(25)
    }
    write_folder(tmp_path / "set", files)
    first = load_dataset(f"folder:{tmp_path / 'set'}", val_split="first:10%", cache=False)
    again = load_dataset(f"folder:{tmp_path / 'set'}", val_split="first:10%", cache=False)
    assert len(set(first.val.y.tolist())) > 1
    np.testing.assert_array_equal(first.val.x, again.val.x)
    np.testing.assert_array_equal(first.train.y, again.train.y)


@pytest.mark.parametrize("kind", ["tar.gz", "tar", "zip"])
def test_archives_with_a_single_top_level_folder(tmp_path, image_set, kind):
    files, arrays = image_set
    members = {f"pets/{name}": data for name, data in files.items()}
    archive = tmp_path / f"pets.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    elif kind == "tar":
        import io
        import tarfile  # noqa: E401

        with tarfile.open(archive, "w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    else:
        write_tar(archive, members)
    _check(load_dataset(f"folder:{archive}"), arrays)
    assert sorted(os.listdir(tmp_path)) == [archive.name]  # read in place, nothing extracted


def test_class_folders_only_split_by_val_split(tmp_path):
    files, arrays = _image_set(np.random.default_rng(1), layout="flat")
    write_folder(tmp_path / "flat", files)
    data = load_dataset(f"folder:{tmp_path / 'flat'}", val_split="last:2")
    assert data.test is None and len(data.train) == 3 and len(data.val) == 2
    # The validation images are the last two of the interleaved order, disjoint from train.
    pairs = lambda split: {(x.tobytes(), int(y)) for x, y in zip(split.x, split.y)}  # noqa: E731
    everything = {(arrays[n].tobytes(), 0 if "cats/" in n else 1) for n in arrays}
    assert pairs(data.train) | pairs(data.val) == everything and not pairs(data.train) & pairs(data.val)


def test_size_and_colour_mode_from_options_or_first_image(tmp_path):
    from PIL import Image

    root = tmp_path / "mixed" / "train"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir(parents=True)
    Image.fromarray(np.full((10, 12), 90, np.uint8)).save(root / "a" / "0.png")  # L, 10x12: the first
    Image.fromarray(np.full((20, 24, 3), 200, np.uint8)).save(root / "b" / "1.jpg")  # RGB, 20x24
    Image.fromarray(np.full((5, 5, 4), 255, np.uint8)).save(root / "b" / "2.png")  # RGBA
    first = load_dataset(f"folder:{tmp_path / 'mixed'}", splits=["train"])
    assert first.input_shape == (10, 12, 1)
    rgb_jpeg = first.train.x[first.train.y == 1]  # class b: the RGB JPEG (200) and the RGBA PNG (255)
    assert sorted(abs(int(x.mean()) - 200) <= 2 for x in rgb_jpeg) == [False, True]
    chosen = load_dataset(f"folder:{tmp_path / 'mixed'}", splits=["train"], image_size=16, color_mode="rgb")
    assert chosen.input_shape == (16, 16, 3)


def test_corrupt_image_is_named_or_skipped_and_counted(tmp_path, image_set):
    files, _ = image_set
    files["train/dogs/broken.png"] = b"\x89PNG\r\n\x1a\ngarbage"
    write_folder(tmp_path / "pets", files)
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(f"folder:{tmp_path / 'pets'}")
    data = load_dataset(f"folder:{tmp_path / 'pets'}", skip_bad=True)
    assert data.meta["skipped_bad"] == 1 and data.meta["skipped_examples"] == ["train/dogs/broken.png"]
    assert len(data.train) == 5


def test_cli_unreadable_image_is_a_clean_error(tmp_path, image_set):
    files, _ = image_set
    files["test/cats/cut.png"] = png_bytes(np.zeros((30, 30, 3), np.uint8))[:60]
    write_folder(tmp_path / "pets", files)
    out = tmp_path / "grid.png"
    proc = run_cli("show", f"folder:{tmp_path / 'pets'}", "--split", "test", "--out", out)
    assert_clean_error(proc, "cut.png")
    assert not out.exists()


def test_decoded_arrays_are_cached_and_refreshed_when_the_source_changes(tmp_path, image_set):
    files, arrays = image_set
    archive = write_tar(tmp_path / "pets.tar.gz", {f"pets/{k}": v for k, v in files.items()})
    first = load_dataset(f"folder:{archive}")
    assert "cache" not in first.meta
    again = load_dataset(f"folder:{archive}")
    assert len(again.meta["cache"]) == 2 and all(os.path.isfile(f) for f in again.meta["cache"])
    np.testing.assert_array_equal(again.train.x, first.train.x)
    files["train/dogs/009.png"] = png_bytes(np.zeros((8, 6, 3), np.uint8))
    write_tar(archive, {f"pets/{k}": v for k, v in files.items()})
    os.utime(archive, ns=(1, os.stat(archive).st_mtime_ns + 10**9))
    changed = load_dataset(f"folder:{archive}")
    assert len(changed.train) == 6 and "cache" not in changed.meta
    test_only = load_dataset(f"folder:{archive}", splits=["test"])  # each split is cached on its own
    assert len(test_only.meta["cache"]) == 1


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_dataset(f"folder:{tmp_path / 'empty'}")


def test_cifar10_jpeg_copy_test_split():
    archive = require_data("cifar10-jpg", "cifar10-jpg.tar.gz")
    data = load_dataset(f"folder:{archive}", splits=["test"])
    assert data.class_names == [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    assert data.test.x.shape == (10000, 32, 32, 3)
    assert np.bincount(data.test.y).tolist() == [1000] * 10


@pytest.mark.slow
def test_cifar10_jpeg_copy_full_through_folder_and_by_name():
    archive = require_data("cifar10-jpg", "cifar10-jpg.tar.gz")
    data = load_dataset(f"folder:{archive}")
    assert data.train.x.shape == (50000, 32, 32, 3) and data.num_classes == 10
    assert np.bincount(data.train.y).tolist() == [5000] * 10
    assert np.bincount(data.test.y).tolist() == [1000] * 10
    named = load_dataset("cifar10_jpg", data_dir=archive.parent.parent, splits=["test"])
    np.testing.assert_array_equal(named.test.x, data.test.x)
    assert named.class_names == data.class_names
