"""Streaming batches from files: the in-memory batch contract, determinism, bounded prefetch, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data import batches
from cnnlab.data.augmentation import Augmentation
from cnnlab.data.preprocessing import Preprocessing
from cnnlab.data.streaming import ImageStream, list_image_files, stream_batches
from cnnlab.errors import DataError


@pytest.fixture
def photos(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    for cls in ("cat", "dog", "owl"):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            h, w = (40, 60) if i % 2 else (50, 50)
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / cls / f"{i}.{'jpg' if i % 3 else 'png'}")
    return root


def test_same_batches_as_the_in_memory_path(photos):
    files, labels, classes = list_image_files(photos)
    assert classes == ["cat", "dog", "owl"] and len(files) == 30
    x = Preprocessing(image_size=(24, 24), channels=3, resize="center-crop").load_images(files)
    expected = list(batches(x, labels, 7, shuffle=True, seed=1, epoch=2))
    got = list(
        stream_batches(
            files,
            labels,
            7,
            shuffle=True,
            seed=1,
            epoch=2,
            image_size=(24, 24),
            resize="center-crop",
            workers=3,
            prefetch=2,
        )
    )
    assert len(got) == len(expected) == 5
    for (gx, gy), (ex, ey) in zip(got, expected):
        np.testing.assert_array_equal(gx, ex)
        np.testing.assert_array_equal(gy, ey)


def test_augmented_stream_is_deterministic_whatever_the_threads(photos):
    files, labels, _ = list_image_files(photos)
    augment = Augmentation(shift=0.1, flip=True)

    def epoch(workers):
        stream = ImageStream(files, labels, (16, 16), 1, batch_size=8, seed=5, augmentation=augment, workers=workers)
        return list(stream.epoch(3))

    one, four = epoch(1), epoch(4)
    for (ax, ay), (bx, by) in zip(one, four):
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ay, by)
    # ...and it is the loop's augmentation: batch i of epoch e drawn with [seed, e, i]
    plain = list(ImageStream(files, labels, (16, 16), 1, batch_size=8, seed=5).epoch(3))
    for i, ((ax, _), (px, _)) in enumerate(zip(one, plain)):
        np.testing.assert_array_equal(ax, augment(px, np.random.default_rng([5, 3, i])))
    assert any(not np.array_equal(a[0], p[0]) for a, p in zip(one, plain))


def test_prefetch_is_bounded(photos, monkeypatch):
    import cnnlab.data.streaming as streaming

    calls = []
    real = streaming.decode
    monkeypatch.setattr(streaming, "decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    files, labels, _ = list_image_files(photos)
    iterator = ImageStream(files, labels, (8, 8), 3, batch_size=3, workers=2, prefetch=2).epoch(0)
    first_x, _ = next(iterator)
    assert len(first_x) == 3
    assert len(calls) <= 2 * 3  # only the two batches submitted so far were decoded
    iterator.close()  # stopping early leaves no thread behind
    assert len(calls) <= 2 * 3


def test_bad_files_named_or_skipped_and_counted(photos):
    (photos / "dog" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    files, labels, _ = list_image_files(photos)
    with pytest.raises(DataError, match="cut.jpg"):
        list(ImageStream(files, labels, (8, 8), batch_size=4).epoch(0))
    stream = ImageStream(files, labels, (8, 8), batch_size=4, skip_bad=True)
    total = sum(len(x) for x, _ in stream.epoch(0))
    assert total == 30 and stream.skipped == 1 and stream.skipped_files[0].endswith("cut.jpg")
    with pytest.raises(DataError, match="not an archive"):
        list_image_files(photos / "dog" / "cut.jpg")


def test_a_streamed_folder_has_the_splits_and_pixels_of_the_loaded_one_and_decodes_only_what_is_indexed(
    photos, monkeypatch
):
    from cnnlab.data import files as files_module
    from cnnlab.data import load_dataset
    from cnnlab.data.files import FileImages
    from cnnlab.data.splits import split_checksum

    options = dict(image_size=(20, 24), resize="pad", val_split=0.2)
    loaded = load_dataset(f"folder:{photos}", **options)
    streamed = load_dataset(f"folder:{photos}", stream=True, **options)
    assert isinstance(streamed.train.x, FileImages) and streamed.train.streamed and not loaded.train.streamed
    assert streamed.input_shape == loaded.input_shape == (20, 24, 3)
    decoded = []
    real_decode = files_module.decode
    monkeypatch.setattr(
        files_module, "decode", lambda source, *a, **k: decoded.append(source) or real_decode(source, *a, **k)
    )
    for name in ("train", "val"):
        a, b = getattr(streamed, name), getattr(loaded, name)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.x[:], b.x)
    assert len(decoded) == 30
    decoded.clear()
    part = streamed.train.take(np.array([5, 1, 7]))  # a subset decodes nothing ...
    assert decoded == [] and len(part) == 3
    np.testing.assert_array_equal(part.x[[2, 0]], loaded.train.x[[7, 5]])  # ... indexing decodes those rows
    np.testing.assert_array_equal(part.x[1], loaded.train.x[1])
    assert len(decoded) == 3
    decoded.clear()
    assert split_checksum(streamed.train) == split_checksum(streamed.train) and decoded == []  # files, not pixels
    with pytest.raises(DataError, match="skip_bad"):
        load_dataset(f"folder:{photos}", stream=True, skip_bad=True)
