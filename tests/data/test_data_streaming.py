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
