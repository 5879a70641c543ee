"""CIFAR python format from batches written in the canonical layout; unsafe pickles and tarballs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.data.cifar import safe_unpickle
from cnnlab.errors import DataError
from tests.conftest import assert_clean_error, run_cli
from tests.data.helpers import CIFAR10_NAMES, cifar10_files, cifar_batch_bytes, png_bytes, write_folder, write_tar


@pytest.fixture(scope="module")
def cifar10():
    return cifar10_files()


def _assert_matches(data, truth):
    assert data.input_shape == (32, 32, 3) and data.class_names == CIFAR10_NAMES
    np.testing.assert_array_equal(data.train.x, truth["train_x"])  # CHW rows -> HWC images, exactly
    np.testing.assert_array_equal(data.train.y, truth["train_y"])
    np.testing.assert_array_equal(data.test.x, truth["test_x"])
    np.testing.assert_array_equal(data.test.y, truth["test_y"])


def test_extracted_folder(tmp_path, cifar10):
    files, truth = cifar10
    write_folder(tmp_path / "cifar-10" / "cifar-10-batches-py", files)
    _assert_matches(load_dataset("cifar10", data_dir=tmp_path), truth)


def test_tarball_read_without_extracting(tmp_path, cifar10):
    files, truth = cifar10
    write_tar(
        tmp_path / "cifar-10" / "cifar-10-python.tar.gz", {f"cifar-10-batches-py/{k}": v for k, v in files.items()}
    )
    _assert_matches(load_dataset("cifar10", data_dir=tmp_path, verify=False), truth)
    assert sorted(os.listdir(tmp_path / "cifar-10")) == ["cifar-10-python.tar.gz"]  # nothing extracted
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):  # not the published file
        load_dataset("cifar10", data_dir=tmp_path)


def test_pixel_layout_red_plane_comes_first(tmp_path):
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 0, 1, 0] = 200  # red at row 0, column 1
    image[0, 2, 0, 2] = 100  # blue at row 2, column 0
    row = cifar_batch_bytes(image, [3])
    raw = pickle.loads(row, encoding="bytes")[b"data"][0]
    assert raw[1] == 200 and raw[2048 + 2 * 32] == 100  # the canonical order: R plane, G plane, B plane
    files, _ = cifar10_files(n_per_batch=1)
    files["test_batch"] = row
    write_folder(tmp_path / "cifar-10" / "cifar-10-batches-py", files)
    data = load_dataset("cifar10", data_dir=tmp_path, splits=["test"])
    np.testing.assert_array_equal(data.test.x, image)


def test_cifar100_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    x_train, x_test = (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in (8, 4))
    y_train, y_test = rng.integers(0, 100, 8), rng.integers(0, 100, 4)
    coarse = {b"coarse_labels": [0] * 8}
    fine_names = [f"class{i:02d}".encode() for i in range(100)]
    files = {
        "train": cifar_batch_bytes(x_train, y_train, b"fine_labels", coarse),
        "test": cifar_batch_bytes(x_test, y_test, b"fine_labels", {b"coarse_labels": [0] * 4}),
        "meta": pickle.dumps({b"fine_label_names": fine_names, b"coarse_label_names": [b"c"] * 20}, protocol=2),
    }
    write_tar(
        tmp_path / "cifar-100" / "cifar-100-python.tar.gz", {f"cifar-100-python/{k}": v for k, v in files.items()}
    )
    data = load_dataset("cifar100", data_dir=tmp_path, verify=False)
    assert data.num_classes == 100 and data.class_names[7] == "class07"
    np.testing.assert_array_equal(data.train.x, x_train)
    np.testing.assert_array_equal(data.train.y, y_train)


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize(
    "payload",
    [
        lambda marker: _RunsCode(f"touch {marker}"),
        lambda marker: {b"data": _RunsCode(f"touch {marker}"), b"labels": []},
    ],
)
def test_code_executing_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "pwned"
    with pytest.raises(DataError, match="refusing to load global"):
        safe_unpickle(pickle.dumps(payload(marker), protocol=2), "evil")
    assert not marker.exists()


def test_other_globals_and_codecs_tricks_are_refused():
    class Eval:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    with pytest.raises(DataError, match="builtins.eval"):
        safe_unpickle(pickle.dumps(Eval()), "x")
    import _codecs

    class Rot:
        def __reduce__(self):
            return (_codecs.encode, ("abc", "rot13"))

    with pytest.raises(DataError, match="rot13"):
        safe_unpickle(pickle.dumps(Rot(), protocol=2), "x")


def test_cli_code_executing_batch_is_a_clean_error(tmp_path, cifar10):
    files, _ = cifar10
    marker = tmp_path / "pwned"
    files = dict(files, data_batch_3=pickle.dumps(_RunsCode(f"touch {marker}"), protocol=2))
    write_folder(tmp_path / "cifar-10" / "cifar-10-batches-py", files)
    out = tmp_path / "grid.png"
    proc = run_cli("--data-dir", tmp_path, "show", "cifar10", "--out", out)
    assert_clean_error(proc, "data_batch_3", "posix.system")
    assert not marker.exists() and not out.exists()


BAD_MEMBERS = [
    {"members": {"../escaped.txt": b"x"}},
    {"members": {"/tmp/absolute.txt": b"x"}},
    {"links": {"root/link": "../../../etc/passwd"}},
    {"links": {"root/abs": "/etc/passwd"}},
]


@pytest.mark.parametrize("bad", BAD_MEMBERS, ids=["dotdot", "absolute", "link-up", "link-absolute"])
def test_cifar_tar_with_escaping_member_is_refused(tmp_path, cifar10, bad):
    files, _ = cifar10
    members = {f"cifar-10-batches-py/{k}": v for k, v in files.items()}
    members.update(bad.get("members", {}))
    write_tar(tmp_path / "cifar-10" / "cifar-10-python.tar.gz", members, bad.get("links"))
    with pytest.raises(DataError, match="refusing the archive"):
        load_dataset("cifar10", data_dir=tmp_path, verify=False)


@pytest.mark.parametrize("bad", BAD_MEMBERS, ids=["dotdot", "absolute", "link-up", "link-absolute"])
def test_cli_image_tarball_with_escaping_member_is_refused(tmp_path, bad):
    image = png_bytes(np.zeros((4, 4, 3), np.uint8))
    members = {f"root/{split}/{cls}/{i}.png": image for split in ("train", "test") for cls in "ab" for i in range(2)}
    members.update(bad.get("members", {}))
    archive = write_tar(tmp_path / "in" / "images.tar.gz", members, bad.get("links"))
    before = sorted(tmp_path.rglob("*"))
    proc = run_cli("show", f"folder:{archive}", "--out", tmp_path / "grid.png")
    assert_clean_error(proc, "images.tar.gz", "refusing the archive")
    assert sorted(tmp_path.rglob("*")) == before  # nothing extracted, no figure
