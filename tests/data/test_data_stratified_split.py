"""Stratified, seeded, recorded splits: proportions, exact re-application, refusal on changed data."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data import Dataset, Split, load_dataset
from cnnlab.data.splits import (
    apply_split_record,
    load_split_record,
    save_split_record,
    stratified_indices,
    stratified_split,
)
from cnnlab.errors import DataError
from tests.data.helpers import png_bytes, write_folder


def _dataset(counts=(100, 50, 30, 10, 3), test=None, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(counts)), counts)
    x = rng.integers(0, 256, (len(y), 4, 4, 3), dtype=np.uint8)
    order = rng.permutation(len(y))
    return Dataset("toy", Split(x[order], y[order]), None, test, [f"c{i}" for i in range(len(counts))])


def test_default_holds_out_ten_percent_val_and_test_per_class():
    data = _dataset()
    split, record = stratified_split(data)
    n = len(data.train)
    assert len(split.test) == round(0.1 * n) and len(split.val) == round(0.1 * n)
    assert len(split.train) + len(split.val) + len(split.test) == n
    for part in (split.val, split.test):  # every class with enough images appears, in proportion
        counts = np.bincount(part.y, minlength=5)
        assert counts.min() >= 1
        assert abs(counts[0] / len(part) - 100 / n) < 0.1
    everything = {x.tobytes() for x in data.train.x}
    parts = [{x.tobytes() for x in p.x} for p in (split.train, split.val, split.test)]
    assert set.union(*parts) == everything and sum(map(len, parts)) == len(everything)  # disjoint
    assert "seed 0" in record["message"] and record["source"]["images"] == n


def test_a_dataset_with_a_test_split_only_gets_validation():
    data = _dataset(test=Split(np.zeros((5, 4, 4, 3), np.uint8), np.arange(5)))
    split, record = stratified_split(data)
    assert split.test is data.test and len(split.val) == round(0.1 * len(data.train))
    assert set(record["indices"]) == {"val"}
    with pytest.raises(DataError, match="already has a test split"):
        stratified_split(data, test=0.2)


def test_counts_fractions_and_seeds():
    data = _dataset()
    split, _ = stratified_split(data, val=20, test="5%")
    assert len(split.val) == 20 and len(split.test) == round(0.05 * len(data.train))
    again, _ = stratified_split(data, val=20, test="5%")
    other, _ = stratified_split(data, val=20, test="5%", seed=1)
    np.testing.assert_array_equal(split.val.x, again.val.x)
    assert not np.array_equal(split.val.x, other.val.x)
    with pytest.raises(DataError, match="test_split"):
        stratified_split(data, test="last:10%")
    with pytest.raises(DataError, match="leaves no training"):
        stratified_split(data, val=0.6, test=0.5)


def test_record_round_trip_and_changed_source(tmp_path):
    data = _dataset()
    split, record = stratified_split(data, seed=3)
    save_split_record(record, tmp_path / "split.json")
    again = apply_split_record(data, load_split_record(tmp_path / "split.json"))
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(again, name).x, getattr(split, name).x)
        np.testing.assert_array_equal(getattr(again, name).y, getattr(split, name).y)
    changed = _dataset()
    changed.train.x[0, 0, 0, 0] ^= 1
    with pytest.raises(DataError, match="changed since the split was recorded") as error:
        apply_split_record(changed, record)
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="not a split record"):
        (tmp_path / "bad.json").write_text("{}")
        load_split_record(tmp_path / "bad.json")


def test_tiny_classes_stay_in_train():
    y = np.array([0] * 40 + [1] * 2)
    parts = stratified_indices(y, {"test": 4, "val": 4}, seed=0)
    assert set(y[parts["train"]]) == {0, 1}
    assert len(parts["test"]) == 4 and len(parts["val"]) == 4


def test_folder_without_test_split_keeps_file_names_aligned(tmp_path):
    rng = np.random.default_rng(0)
    files = {
        f"{c}/{i:02d}.png": png_bytes(
            np.full((6, 6, 3), 10 * i + 100 * k, np.uint8) + rng.integers(0, 3, (6, 6, 3), dtype=np.uint8)
        )
        for k, c in enumerate(("a", "b"))
        for i in range(10)
    }
    write_folder(tmp_path / "set", files)
    data = load_dataset(f"folder:{tmp_path / 'set'}", list_files=True, cache=False)
    assert data.test is None
    split, record = stratified_split(data)
    assert len(split.test) == 2 and sorted(split.test.y.tolist()) == [0, 1]
    for name in ("train", "val", "test"):
        part, names = getattr(split, name), split.meta["files"][name]
        assert len(names) == len(part)
        for x, file in zip(part.x, names):
            assert (
                x.tobytes()
                == load_dataset(f"folder:{tmp_path / 'set'}", cache=False)
                .train.x[data.meta["files"]["train"].index(file)]
                .tobytes()
            )
