"""The NAS data layer: CIFAR pickle reading, offline-safe download, synthetic task, batching.

Every CIFAR file here is generated in the test in the real on-disk format, so nothing touches
the network or needs the real data set.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import HwcostError
from nas import data
from nas.data import (
    _SOURCES,
    Augment,
    Batches,
    download_cifar,
    load_cifar,
    make_loaders,
    normalize,
    synthetic,
)

PER_BATCH = 6


def _batch_bytes(n: int, start: int, label_key: bytes = b"labels", classes: int = 10) -> bytes:
    """A pickle laid out like the official batches: (N, 3072) uint8 rows, R then G then B."""
    rows = np.zeros((n, 3072), dtype=np.uint8)
    for i in range(n):
        k = start + i
        # One marker pixel per image and channel at a position depending on the image index.
        for c in range(3):
            y, x = (k + c) % 32, (3 * k + 5 * c) % 32
            rows[i, c * 1024 + y * 32 + x] = 10 + 50 * c + k % 7
    labels = [(start + i) % classes for i in range(n)]
    obj = {b"batch_label": b"fake", b"data": rows, label_key: labels, b"filenames": []}
    if label_key == b"fine_labels":
        obj[b"coarse_labels"] = [0] * n
    return pickle.dumps(obj)


def _marker(k: int, c: int) -> tuple[int, int, int]:
    return (k + c) % 32, (3 * k + 5 * c) % 32, 10 + 50 * c + k % 7


def _write_cifar10(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(5):
        (folder / f"data_batch_{b + 1}").write_bytes(_batch_bytes(PER_BATCH, b * PER_BATCH))
    (folder / "test_batch").write_bytes(_batch_bytes(4, 1000))
    return folder


@pytest.fixture
def cifar10(tmp_path: Path) -> Path:
    _write_cifar10(tmp_path)
    return tmp_path


# ------------------------------------------------------------------------------ loading


def test_load_cifar10_pixel_layout_and_labels(cifar10: Path) -> None:
    images, labels = load_cifar(cifar10, "cifar10", train=True)
    assert images.shape == (5 * PER_BATCH, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert labels.tolist() == [k % 10 for k in range(5 * PER_BATCH)]
    for k in (0, 7, 29):
        for c in range(3):
            y, x, v = _marker(k, c)
            assert images[k, c, y, x].item() == v
            assert int(images[k, c].sum()) == v  # the only non-zero pixel of that plane


def test_load_cifar10_test_split_and_folder_as_root(cifar10: Path) -> None:
    images, labels = load_cifar(cifar10, "cifar10", train=False)
    assert images.shape == (4, 3, 32, 32)
    assert labels.tolist() == [(1000 + i) % 10 for i in range(4)]
    y, x, v = _marker(1002, 1)
    assert images[2, 1, y, x].item() == v
    # Pointing straight at the extracted folder works too.
    again, _ = load_cifar(cifar10 / "cifar-10-batches-py", "cifar10", train=False)
    assert torch.equal(images, again)


def test_load_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(_batch_bytes(8, 90, b"fine_labels", classes=100))
    (folder / "test").write_bytes(_batch_bytes(3, 0, b"fine_labels", classes=100))
    images, labels = load_cifar(tmp_path, "cifar100", train=True)
    assert images.shape == (8, 3, 32, 32)
    assert labels.tolist() == [(90 + i) % 100 for i in range(8)]  # not the all-zero coarse ones
    assert load_cifar(tmp_path, "cifar100", train=False)[1].tolist() == [0, 1, 2]


def test_missing_files_say_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(HwcostError) as e:
        load_cifar(tmp_path, "cifar10")
    msg = str(e.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "--download" in msg


def test_one_missing_batch_is_named(cifar10: Path) -> None:
    (cifar10 / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(HwcostError, match="data_batch_4"):
        load_cifar(cifar10, "cifar10")


def test_corrupted_pickle_names_file(cifar10: Path) -> None:
    bad = cifar10 / "cifar-10-batches-py" / "data_batch_2"
    bad.write_bytes(b"\x80\x04this is not a pickle at all")
    with pytest.raises(HwcostError) as e:
        load_cifar(cifar10, "cifar10")
    assert e.value.file == str(bad) and "corrupted" in str(e.value)


@pytest.mark.parametrize(
    ("payload", "expect"),
    [
        ([1, 2, 3], "expected a pickled dict"),
        ({b"data": np.zeros((2, 3072), np.uint8)}, "missing key 'labels'"),
        ({b"labels": [0, 1]}, "missing key 'data'"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, "shape"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels outside"),
    ],
)
def test_wrong_structure_refused(cifar10: Path, payload: object, expect: str) -> None:
    bad = cifar10 / "cifar-10-batches-py" / "data_batch_1"
    bad.write_bytes(pickle.dumps(payload))
    with pytest.raises(HwcostError, match=expect) as e:
        load_cifar(cifar10, "cifar10")
    assert e.value.file == str(bad)


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/nonexistent/should-never-run"),))


def test_pickle_with_foreign_globals_is_not_executed(cifar10: Path) -> None:
    bad = cifar10 / "cifar-10-batches-py" / "data_batch_1"
    bad.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(HwcostError, match="refusing"):
        load_cifar(cifar10, "cifar10")


# ------------------------------------------------------------------------------ download


def _tarball(tmp_path: Path, members: dict[str, bytes]) -> Path:
    path = tmp_path / "src" / "cifar-10-python.tar.gz"
    path.parent.mkdir(exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def _fake_cifar10_members() -> dict[str, bytes]:
    members = {
        f"cifar-10-batches-py/data_batch_{b + 1}": _batch_bytes(2, 2 * b) for b in range(5)
    }
    members["cifar-10-batches-py/test_batch"] = _batch_bytes(2, 50)
    return members


def _point_source_at(monkeypatch: pytest.MonkeyPatch, tarball: Path, md5: str | None) -> None:
    src = _SOURCES["cifar10"]
    md5 = md5 or hashlib.md5(tarball.read_bytes()).hexdigest()
    fake = type(src)(**{**src.__dict__, "url": tarball.as_uri(), "md5": md5})
    monkeypatch.setitem(_SOURCES, "cifar10", fake)


def test_download_offline_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "data"
    with pytest.raises(HwcostError) as e:
        download_cifar(root, "cifar10")
    assert str(e.value) == (
        "cannot download CIFAR-10 (offline?): Temporary failure in name resolution; "
        f"download cifar-10-python.tar.gz by hand and extract it into {root}"
    )
    assert list(root.iterdir()) == []  # the temp file was cleaned up


def test_make_loaders_download_flag_surfaces_offline_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(HwcostError, match=r"cannot download CIFAR-10 \(offline\?\): timed out"):
        make_loaders("cifar10", tmp_path, 8, download=True)


def test_download_md5_mismatch_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tarball = _tarball(tmp_path, _fake_cifar10_members())
    _point_source_at(monkeypatch, tarball, md5="0" * 32)
    root = tmp_path / "data"
    with pytest.raises(HwcostError, match="md5"):
        download_cifar(root, "cifar10")
    assert list(root.iterdir()) == []  # neither the archive nor a partial file is kept


def test_download_verifies_extracts_and_then_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = _tarball(tmp_path, _fake_cifar10_members())
    _point_source_at(monkeypatch, tarball, md5=None)
    root = tmp_path / "data"
    folder = download_cifar(root, "cifar10")
    assert folder == root / "cifar-10-batches-py"
    assert (root / "cifar-10-python.tar.gz").read_bytes() == tarball.read_bytes()
    images, labels = load_cifar(root, "cifar10")
    assert images.shape == (10, 3, 32, 32) and labels.tolist() == [k % 10 for k in range(10)]

    # Present data is not fetched again (the network is now "down").
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("down")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert download_cifar(root, "cifar10") == folder


@pytest.mark.parametrize("name", ["../escape.txt", "/abs/escape.txt"])
def test_download_refuses_path_traversal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    members = _fake_cifar10_members()
    members[name] = b"gotcha"
    tarball = _tarball(tmp_path, members)
    _point_source_at(monkeypatch, tarball, md5=None)
    root = tmp_path / "data"
    with pytest.raises(HwcostError, match="refusing to extract"):
        download_cifar(root, "cifar10")
    assert not (tmp_path / "escape.txt").exists()
    assert not (root / "cifar-10-batches-py").exists()  # vetted before anything is written


# ------------------------------------------------------------------------------ synthetic


def test_synthetic_shapes_and_determinism() -> None:
    x1, y1 = synthetic(50, classes=5, size=16, seed=3)
    x2, y2 = synthetic(50, classes=5, size=16, seed=3)
    x3, _ = synthetic(50, classes=5, size=16, seed=4)
    assert x1.shape == (50, 3, 16, 16) and x1.dtype == torch.uint8
    assert y1.dtype == torch.int64 and 0 <= y1.min() and y1.max() < 5
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)


def test_synthetic_is_learnable_by_nearest_class_mean() -> None:
    x, y = synthetic(400, classes=10, seed=0)
    flat = x.float().reshape(400, -1)
    train, test = flat[:200], flat[200:]
    means = torch.stack([train[y[:200] == c].mean(0) for c in range(10)])
    accuracy = (torch.cdist(test, means).argmin(1) == y[200:]).float().mean().item()
    assert accuracy > 0.35  # chance is 0.10


# ------------------------------------------------------------------------------ augmentation


def test_normalize() -> None:
    img = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(img, (0.5, 0.25, 0.0), (0.5, 0.25, 2.0))
    assert out.dtype == torch.float32
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 3.0, 0.5]))
    assert torch.allclose(normalize(img.float() / 255, (0.5,) * 3, (0.5,) * 3), torch.ones(1))


def test_crop_is_a_window_of_the_zero_padded_image() -> None:
    img = torch.arange(3 * 8 * 8, dtype=torch.float32).view(1, 3, 8, 8) + 1
    batch = img.repeat(40, 1, 1, 1)
    out = Augment(padding=4, flip=False).crop(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape
    padded = torch.nn.functional.pad(img[0], (4, 4, 4, 4))
    windows = {(oy, ox): padded[:, oy : oy + 8, ox : ox + 8] for oy in range(9) for ox in range(9)}
    seen = set()
    for o in out:
        hits = [k for k, w in windows.items() if torch.equal(o, w)]
        assert len(hits) == 1
        seen.add(hits[0])
    assert len(seen) > 5  # offsets actually vary


def test_flip_mirrors_left_right() -> None:
    img = torch.zeros(1, 3, 4, 5, dtype=torch.uint8)
    img[0, 0, 1, 0] = 200  # red pixel at the left edge, row 1
    img[0, 2, 3, 1] = 9
    mirrored = torch.zeros_like(img)
    mirrored[0, 0, 1, 4] = 200
    mirrored[0, 2, 3, 3] = 9
    out = Augment(padding=0, flip=True).hflip(img.repeat(32, 1, 1, 1), torch.Generator())
    flipped = [torch.equal(o, mirrored[0]) for o in out]
    kept = [torch.equal(o, img[0]) for o in out]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_cutout_zeroes_one_square() -> None:
    x = torch.ones(64, 3, 32, 32)
    out = Augment(padding=0, flip=False, cutout=8).apply_cutout(x, torch.Generator().manual_seed(1))
    full = 0
    for o in out:
        hole = o[0] == 0
        assert torch.equal(hole, o[1] == 0) and torch.equal(hole, o[2] == 0)  # all channels
        rows, cols = hole.any(1), hole.any(0)
        assert torch.equal(hole, rows[:, None] & cols[None, :])  # an axis-aligned rectangle
        assert 1 <= rows.sum() <= 8 and 1 <= cols.sum() <= 8
        assert (o[~hole.expand(3, -1, -1)] == 1).all()
        full += int(hole.sum() == 64)
    assert full > 20  # away from the border the whole 8x8 square is cut


def test_augment_call_keeps_shape_and_dtype() -> None:
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    out = Augment(cutout=16)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8


# ------------------------------------------------------------------------------ batching


def _collect(loader: Batches, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.epoch_batches(epoch))


def test_batches_reproducible_per_seed_and_epoch() -> None:
    weights, _ = make_loaders("synthetic", "", 32, seed=5, cutout=8, synthetic_size=256)
    a = _collect(weights, 3)
    b = _collect(weights, 3)
    assert len(a) == len(weights) == 4
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert a[0][0].dtype == torch.float32 and a[0][0].shape == (32, 3, 32, 32)
    other = _collect(weights, 4)
    assert not torch.equal(a[0][0], other[0][0])

    # A "resumed" run: fresh loaders, same seed, jump straight to epoch 3.
    resumed, _ = make_loaders("synthetic", "", 32, seed=5, cutout=8, synthetic_size=256)
    resumed.set_epoch(3)
    c = list(resumed)
    assert all(torch.equal(xa, xc) and torch.equal(ya, yc) for (xa, ya), (xc, yc) in zip(a, c))

    different_seed, _ = make_loaders("synthetic", "", 32, seed=6, cutout=8, synthetic_size=256)
    assert not torch.equal(a[0][0], _collect(different_seed, 3)[0][0])


def test_search_split_is_disjoint_half_and_half() -> None:
    weights, arch = make_loaders("synthetic", "", 50, seed=1, synthetic_size=300)
    assert weights.num_samples == arch.num_samples == 150
    w, a = set(weights.indices.tolist()), set(arch.indices.tolist())
    assert not w & a and w | a == set(range(300))
    assert w != set(range(150))  # split of the *shuffled* set
    # Each epoch serves every sample of a split exactly once (last batch may be short).
    labels = torch.cat([y for _, y in weights.epoch_batches(0)])
    assert sorted(labels.tolist()) == sorted(weights.labels[weights.indices].tolist())
    assert [len(y) for _, y in weights.epoch_batches(0)] == [50, 50, 50]


def test_train_portion_respected() -> None:
    weights, arch = make_loaders("synthetic", "", 16, train_portion=0.8, synthetic_size=100)
    assert (weights.num_samples, arch.num_samples) == (80, 20)
    with pytest.raises(HwcostError, match="train portion"):
        make_loaders("synthetic", "", 16, train_portion=1.0, synthetic_size=100)


def test_eval_loaders_use_cifar_train_and_plain_test(cifar10: Path) -> None:
    train, test = make_loaders("cifar10", cifar10, 4, search=False, seed=0)
    assert train.num_samples == 5 * PER_BATCH and test.num_samples == 4
    assert train.num_classes == 10 and train.augment is not None and test.augment is None
    xs = torch.cat([x for x, _ in test])
    raw, labels = load_cifar(cifar10, "cifar10", train=False)
    assert torch.allclose(xs, normalize(raw, train.mean, train.std))  # unshuffled, unaugmented
    assert torch.equal(torch.cat([y for _, y in test]), labels)


def test_cifar_loaders_without_data_point_to_download(tmp_path: Path) -> None:
    with pytest.raises(HwcostError, match="--download"):
        make_loaders("cifar100", tmp_path, 8)


def test_unknown_dataset_lists_names() -> None:
    with pytest.raises(HwcostError) as e:
        make_loaders("imagenet", "", 8)
    assert "imagenet" in str(e.value)
    for name in data.DATASETS:
        assert name in str(e.value)


@pytest.mark.parametrize(("dataset", "size", "pad", "flip"), [
    ("synthetic", None, 4, True), ("digits", 8, 1, False), ("digits", 16, 2, False),
    ("digits", 20, 2, False), ("digits", 28, 4, False)])
def test_augmentation_shifts_scale_with_the_image_and_digits_are_not_mirrored(
        dataset, size, pad, flip) -> None:
    if dataset == "digits":
        pytest.importorskip("sklearn")
    train, _ = make_loaders(dataset, "unused", 8, search=False, input_size=size,
                            synthetic_size=16)
    side = int(train.images.shape[-1])
    assert train.augment.padding == pad == max(1, round(side / 8))
    assert train.augment.flip is flip
