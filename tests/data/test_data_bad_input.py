"""Bad input through the CLI: one line, non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.data.idx import parse_idx
from cnnlab.errors import DataError
from tests.conftest import assert_clean_error, require_data, run_cli
from tests.data.helpers import idx_bytes, write_idx_dataset


def _show(tmp_path, dataset, *extra):
    out = tmp_path / "grid.png"
    proc = run_cli(*extra, "show", dataset, "--out", out)
    assert not out.exists()
    return proc


def test_idx_dir_loads_a_generic_idx_dataset(tmp_path):
    truth = write_idx_dataset(tmp_path / "kmnist", classes=10)
    data = load_dataset(f"idx:{tmp_path / 'kmnist'}")
    np.testing.assert_array_equal(data.train.x[..., 0], truth["train"][0])
    np.testing.assert_array_equal(data.test.y, truth["t10k"][1])
    plain = write_idx_dataset(tmp_path / "plain", gz=False, seed=1)
    np.testing.assert_array_equal(load_dataset(f"idx:{tmp_path / 'plain'}").train.x[..., 0], plain["train"][0])


def test_idx_dtypes_and_byte_order():
    values = np.array([[1, -2], [300, -40000]], np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(values, 0x0C)), values)
    floats = np.array([0.5, -1.25], np.float32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(floats, 0x0D)), floats)


def test_truncated_gz(tmp_path):
    write_idx_dataset(tmp_path / "d")
    path = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    assert_clean_error(_show(tmp_path, f"idx:{tmp_path / 'd'}"), "train-images-idx3-ubyte.gz", "truncated gzip")


def test_wrong_magic(tmp_path):
    write_idx_dataset(tmp_path / "d", gz=False)
    path = tmp_path / "d" / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x12\x34" + path.read_bytes()[2:])
    assert_clean_error(_show(tmp_path, f"idx:{tmp_path / 'd'}"), "train-labels-idx1-ubyte", "magic")


def test_header_disagrees_with_file_length(tmp_path):
    write_idx_dataset(tmp_path / "d")
    path = tmp_path / "d" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()) + b"\x00" * 28))
    assert_clean_error(_show(tmp_path, f"idx:{tmp_path / 'd'}"), "train-images-idx3-ubyte.gz", "header says")


def test_label_count_differs_from_image_count(tmp_path):
    write_idx_dataset(tmp_path / "d")
    (tmp_path / "d" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(29, np.uint8))))
    assert_clean_error(_show(tmp_path, f"idx:{tmp_path / 'd'}"), "29 labels", "30 images")


def test_canonical_file_cut_short_is_caught_by_its_size(tmp_path):
    real = require_data("mnist")
    (tmp_path / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(real / name, tmp_path / "mnist" / name)
    cut = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    cut.write_bytes(cut.read_bytes()[:5_000_000])
    assert_clean_error(
        _show(tmp_path, "mnist", "--data-dir", tmp_path), "train-images-idx3-ubyte.gz", "expected 9912422"
    )


def test_canonical_file_with_wrong_content_fails_its_checksum(tmp_path):
    real = require_data("mnist")
    (tmp_path / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(real / name, tmp_path / "mnist" / name)
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    content = bytearray(path.read_bytes())
    content[-100] ^= 0xFF
    path.write_bytes(bytes(content))
    assert_clean_error(_show(tmp_path, "mnist", "--data-dir", tmp_path), "train-labels-idx1-ubyte.gz", "checksum")


def test_unknown_dataset_lists_close_names(tmp_path):
    assert_clean_error(_show(tmp_path, "fashion_mnst"), "unknown dataset", "did you mean fashion_mnist")


def test_data_dir_that_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-dir"
    assert_clean_error(_show(tmp_path, "mnist", "--data-dir", missing), str(missing), "does not exist")
    assert not missing.exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--grid", "4by4"), "--grid"),
        (("--split", "val"), "no val split"),
    ],
)
def test_bad_show_options(tmp_path, args, needle):
    proc = run_cli("show", "digits", "--out", tmp_path / "g.png", *args)
    assert_clean_error(proc, needle)
    assert not (tmp_path / "g.png").exists()


def test_datasets_command_lists_names_presence_and_location(tmp_path):
    (tmp_path / "mnist").mkdir()
    proc = run_cli("--data-dir", tmp_path, "datasets", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["mnist"]["present"] is False and rows["mnist"]["location"] == str(tmp_path / "mnist")
    assert rows["digits"]["present"] is True
    table = run_cli("datasets")
    assert table.returncode == 0 and "fashion_mnist" in table.stdout and "cifar10_jpg" in table.stdout


def test_show_writes_a_titled_grid(tmp_path):
    out = tmp_path / "digits.png"
    proc = run_cli("show", "digits", "--grid", "2x3", "--out", out)
    assert proc.returncode == 0, proc.stderr
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > image.height  # 3 columns, 2 rows
    assert "6 train images of digits" in proc.stdout


def test_idx_dir_with_emnist_style_names(tmp_path):
    folder = tmp_path / "emnist"
    truth = write_idx_dataset(tmp_path / "plain", n_train=6, n_test=4, seed=2)
    folder.mkdir()
    for path in (tmp_path / "plain").iterdir():  # emnist-letters-train-..., emnist-letters-test-...
        (folder / ("emnist-letters-" + path.name.replace("t10k", "test"))).write_bytes(path.read_bytes())
    data = load_dataset(f"idx:{folder}", transpose=True)
    np.testing.assert_array_equal(data.train.x[..., 0], truth["train"][0].transpose(0, 2, 1))
    np.testing.assert_array_equal(data.test.y, truth["t10k"][1])
    for path in (tmp_path / "plain").iterdir():
        (folder / ("emnist-digits-" + path.name.replace("t10k", "test"))).write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="several IDX sets"):
        load_dataset(f"idx:{folder}")
    assert len(load_dataset(f"idx:{folder}", prefix="emnist-digits-").train) == 6
