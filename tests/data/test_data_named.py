"""Named datasets from the real files: shapes, published label counts, checksums, splits."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from cnnlab.data import batch_indices, batches, list_datasets, load_dataset, one_hot
from cnnlab.data.sources import FASHION_MNIST, MNIST
from cnnlab.errors import DataError

# Published facts (LeCun et al.'s MNIST page; the Fashion-MNIST README), not loader output.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist", data_dir=_real("mnist").parent)


def _real(folder):
    from tests.conftest import require_data  # noqa: PLC0415

    return require_data(folder)


def test_mnist_shapes_counts_and_first_label(mnist):
    assert mnist.train.x.shape == (60000, 28, 28, 1) and mnist.test.x.shape == (10000, 28, 28, 1)
    assert mnist.train.x.dtype == np.uint8 and mnist.train.y.dtype == np.int64
    assert mnist.train.y[0] == 5
    assert np.bincount(mnist.train.y).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.test.y).tolist() == MNIST_TEST_COUNTS
    assert mnist.input_shape == (28, 28, 1) and mnist.num_classes == 10
    assert set(mnist.meta["files"].values()) == {"checksum verified"}


def test_fashion_mnist_has_6000_and_1000_per_class():
    data = load_dataset("fashion-mnist", data_dir=_real("fashion-mnist").parent)
    assert data.train.x.shape == (60000, 28, 28, 1) and data.test.x.shape == (10000, 28, 28, 1)
    assert np.bincount(data.train.y).tolist() == [6000] * 10
    assert np.bincount(data.test.y).tolist() == [1000] * 10
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"


@pytest.mark.parametrize("source", [MNIST, FASHION_MNIST], ids=["mnist", "fashion"])
def test_shared_files_match_published_checksums(source):
    folder = _real(source.folder)
    for spec in source.files:
        content = (folder / spec.name).read_bytes()
        assert len(content) == spec.size
        assert hashlib.md5(content).hexdigest() == spec.md5
        assert hashlib.sha256(content).hexdigest() == spec.sha256


def test_loading_only_the_test_split_skips_training_files(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (folder / name).symlink_to(_real("mnist") / name)
    data = load_dataset("mnist", data_dir=tmp_path, splits=["test"], download=False, verify=True)
    assert len(data.train) == 0 and len(data.test) == 10000


def test_validation_split_last_and_first(mnist):
    last = load_dataset("mnist", data_dir=_real("mnist").parent, val_split="last:10000")
    assert len(last.train) == 50000 and len(last.val) == 10000
    np.testing.assert_array_equal(last.val.y, mnist.train.y[50000:])
    first = load_dataset("digits", val_split="first:10%")
    full = load_dataset("digits")
    n_val = round(len(full.train) * 0.1)
    np.testing.assert_array_equal(first.val.x, full.train.x[:n_val])
    np.testing.assert_array_equal(first.train.x, full.train.x[n_val:])
    assert first.meta["val_split"]["end"] == "first" and first.meta["val_split"]["count"] == n_val


@pytest.mark.parametrize("spec", ["last:0", "first:100%", "half", 2.0, "last:99999"])
def test_bad_validation_specs(spec):
    with pytest.raises(DataError, match="val_split"):
        load_dataset("digits", val_split=spec)


def test_digits_look_like_mnist():
    data = load_dataset("digits")
    assert data.input_shape == (28, 28, 1) and data.num_classes == 10
    assert len(data.train) + len(data.test) == 1797
    assert np.bincount(data.train.y, minlength=10).min() > 100
    border = np.concatenate([data.train.x[:, :4].ravel(), data.train.x[:, -4:].ravel()])
    assert border.max() == 0  # MNIST-style: the digit sits in the centre, black margin
    assert data.train.x.max() == 255


def test_batches_depend_only_on_seed_and_epoch():
    x, y = np.arange(103) * 10, np.arange(103)
    run1 = [yb.tolist() for _, yb in batches(x, y, 10, shuffle=True, seed=3, epoch=5)]
    run2 = [yb.tolist() for _, yb in batches(x, y, 10, shuffle=True, seed=3, epoch=5)]
    other_epoch = [yb.tolist() for _, yb in batches(x, y, 10, shuffle=True, seed=3, epoch=6)]
    assert run1 == run2 and run1 != other_epoch
    assert sorted(sum(run1, [])) == list(range(103)) and len(run1[-1]) == 3
    dropped = list(batch_indices(103, 10, shuffle=True, seed=3, epoch=5, drop_last=True))
    assert len(dropped) == 10 and all(len(b) == 10 for b in dropped)
    for xb, yb in batches(x, y, 10, shuffle=True, seed=1, epoch=0):
        np.testing.assert_array_equal(xb, yb * 10)


def test_one_hot():
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(DataError):
        one_hot(np.array([3]), 3)


def test_list_datasets_reports_presence(tmp_path):
    infos = {info.name: info for info in list_datasets(tmp_path)}
    assert {"mnist", "fashion_mnist", "digits", "cifar10", "cifar100", "cifar10_jpg"} <= set(infos)
    assert not infos["mnist"].present and infos["mnist"].location == tmp_path / "mnist"
    assert infos["digits"].present


def test_uncompressed_canonical_files_are_read_and_structure_checked(tmp_path):
    import gzip

    real = _real("mnist")
    (tmp_path / "mnist").mkdir()
    for name, plain in (
        ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"),
        ("t10k-labels-idx1-ubyte.gz", "t10k-labels.idx1-ubyte"),
    ):  # both spellings in use
        (tmp_path / "mnist" / plain).write_bytes(gzip.decompress((real / name).read_bytes()))
    data = load_dataset("mnist", data_dir=tmp_path, splits=["test"], download=False)
    assert np.bincount(data.test.y).tolist() == MNIST_TEST_COUNTS
    assert set(data.meta["files"].values()) == {"structure checked"}


def test_missing_files_without_download_or_mirror_say_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match=f"download them into {tmp_path / 'mnist'}"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    with pytest.raises(DataError, match="cifar10-jpg.tar.gz.*no public mirror"):
        load_dataset("cifar10_jpg", data_dir=tmp_path)


def test_asking_for_a_split_that_was_not_made():
    data = load_dataset("digits", splits=["train"])
    assert data.test is None and data.val is None
    with pytest.raises(DataError, match="no val split"):
        data.split("val")


def test_image_grid_writes_png_atomically(tmp_path):
    from PIL import Image

    from cnnlab.visualization.grid import image_grid

    images = np.random.default_rng(0).random((5, 10, 10, 3))  # floats in [0, 1]
    out = image_grid(images, [f"#{i}" for i in range(5)], tmp_path / "g.png", columns=3, suptitle="five")
    with Image.open(out) as png:
        assert png.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]  # no temporary file left
    with pytest.raises(DataError, match="5 images but 4 titles"):
        image_grid(images, ["a"] * 4, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()
