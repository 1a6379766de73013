"""Data layer for DARTS search and evaluation: CIFAR readers, a synthetic task, augmentation.

Why hand-rolled instead of torchvision: the toolkit must run where torchvision is absent, and
a resumed search has to reproduce *exactly* the batches it would have seen, which is easiest to
guarantee when every random draw (split, shuffle, crop, flip, cutout) comes from a generator
seeded by ``(seed, stream, epoch)`` rather than from a worker pool's global state.

Everything a user can get wrong (missing files, a corrupt pickle, no network, an unknown data
set name) is raised as :class:`HwcostError` naming the file or the choices.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import HwcostError
from nas.settings import DATASETS

#: datasets read from the user's files by :mod:`nas.data_files` (``--data-dir`` names the
#: folder, or the ``.npz`` file)
FILE_DATASETS = ("svhn", "folder", "npz")

#: Seed of the synthetic *task* itself.  Fixed on purpose: runs with different ``seed`` values
#: should search the same problem and differ only in split, shuffling and augmentation.
SYNTHETIC_DATA_SEED = 0

DOWNLOAD_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class _Source:
    """Where a CIFAR variant lives on the official page and how its extracted folder looks."""

    title: str
    url: str
    md5: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# URLs and md5 sums as published on https://www.cs.toronto.edu/~kriz/cifar.html.  Kept in a
# module-level dict so tests can point them at a local tarball without touching the network.
_SOURCES: dict[str, _Source] = {
    "cifar10": _Source(
        title="CIFAR-10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key=b"labels",
        classes=10,
        mean=(0.49139968, 0.48215827, 0.44653124),
        std=(0.24703233, 0.24348505, 0.26158768),
    ),
    "cifar100": _Source(
        title="CIFAR-100",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        label_key=b"fine_labels",
        classes=100,
        mean=(0.50707516, 0.48654887, 0.44091784),
        std=(0.26733429, 0.25643846, 0.27615047),
    ),
}

# The synthetic images are built around 0.5 grey with roughly this spread.
_SYNTHETIC_MEAN = (0.5, 0.5, 0.5)
_SYNTHETIC_STD = (0.18, 0.18, 0.18)


def _source(name: str) -> _Source:
    try:
        return _SOURCES[name]
    except KeyError:
        raise HwcostError(
            f"unknown CIFAR variant {name!r}; expected one of {', '.join(sorted(_SOURCES))}"
        ) from None


# --------------------------------------------------------------------------------------------
# Reading the pickle batches
# --------------------------------------------------------------------------------------------

# The only globals a CIFAR batch pickle needs (numpy array reconstruction, across numpy 1.x and
# 2.x module names).  Anything else means the file is not a CIFAR batch, and unpickling it could
# run arbitrary code, so it is refused before it is ever called.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the numpy globals a CIFAR batch legitimately contains."""

    def __init__(self, file: BinaryIO, path: Path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise HwcostError(
                f"not a CIFAR batch: the pickle refers to {module}.{name}, refusing to load it",
                file=self._path,
            )
        return super().find_class(module, name)


#: images in one CIFAR batch file (the real ones hold 10,000)
MAX_BATCH_IMAGES = 100_000


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickle batch, checking its structure so a wrong file fails with its name."""
    if not path.is_file():
        raise HwcostError(
            f"CIFAR batch file not found: {path}; pass --download or put the batches there",
            file=path,
        )
    try:
        with path.open("rb") as f:
            obj = _BatchUnpickler(f, path).load()
    except HwcostError:
        raise
    except Exception as exc:  # pickle raises a zoo of types on corrupt input
        raise HwcostError(
            f"corrupted CIFAR batch ({type(exc).__name__}: {exc})", file=path
        ) from exc
    if not isinstance(obj, dict):
        raise HwcostError(
            f"not a CIFAR batch: expected a pickled dict, found {type(obj).__name__}", file=path
        )
    # Python-2 pickles give bytes keys under encoding="bytes"; a re-pickled batch may use str.
    entries = {(k.encode() if isinstance(k, str) else k): v for k, v in obj.items()}
    for key in (b"data", label_key):
        if key not in entries:
            raise HwcostError(
                f"not a CIFAR batch: missing key {key.decode()!r}", file=path
            )
    raw_data, raw_labels = entries[b"data"], entries[label_key]
    for what, value in (("data", raw_data), ("labels", raw_labels)):
        # a list of references to one row unpickles small and becomes gigabytes as an array
        count = len(value) if isinstance(value, (list, tuple, np.ndarray)) else 0
        if count > MAX_BATCH_IMAGES:
            raise HwcostError(f"not a CIFAR batch: {what!r} holds {count:,} entries; a batch "
                              f"holds at most {MAX_BATCH_IMAGES:,} images", file=path)
    try:
        data = np.asarray(raw_data)
        labels = np.asarray(raw_labels)
        if labels.dtype.kind not in "iu" or labels.ndim != 1:
            raise ValueError(f"labels are {labels.dtype} of shape {labels.shape}, not a list "
                             "of class indices")
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 2**31):
            worst = int(labels.max()) if int(labels.max()) > 2**31 else int(labels.min())
            raise ValueError(f"a label of {worst:,} is no class index")
        labels = labels.astype(np.int64)
    except (TypeError, ValueError, OverflowError, MemoryError) as exc:
        raise HwcostError(f"not a CIFAR batch: unreadable arrays ({type(exc).__name__}: "
                          f"{str(exc)[:200]})", file=path) from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise HwcostError(
            f"not a CIFAR batch: 'data' has shape {data.shape}, expected (N, 3072)", file=path
        )
    if data.dtype.kind not in "iub":
        raise HwcostError(f"not a CIFAR batch: pixels are {data.dtype}, not integers 0..255",
                          file=path)
    if data.dtype != np.uint8:
        if data.size and (data.min() < 0 or data.max() > 255):
            raise HwcostError("not a CIFAR batch: pixel values outside 0..255", file=path)
        data = data.astype(np.uint8)
    if labels.shape != (data.shape[0],):
        raise HwcostError(
            f"not a CIFAR batch: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{data.shape[0]} images",
            file=path,
        )
    return data, labels


def _batch_dir(root: Path, src: _Source) -> Path:
    """Accept either the download root or the extracted folder itself."""
    nested = root / src.folder
    if nested.is_dir() or not (root / (src.train_files + src.test_files)[0]).is_file():
        return nested
    return root


def load_cifar(
    root: str | Path, name: str = "cifar10", train: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a CIFAR split as ``(uint8 images (N, 3, 32, 32), int64 labels (N,))``.

    The images stay uint8 so the whole of CIFAR fits in ~150 MB; normalisation happens per batch.
    """
    src = _source(name)
    folder = _batch_dir(Path(root), src)
    files = src.train_files if train else src.test_files
    datas: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for fname in files:
        path = folder / fname
        if not path.is_file():
            raise HwcostError(
                f"{src.title} data not found: missing {path}; pass --download or put the "
                f"python batches ({src.archive} extracted) there",
                file=path,
            )
        d, lab = _read_batch(path, src.label_key)
        if lab.size and (lab.min() < 0 or lab.max() >= src.classes):
            raise HwcostError(
                f"not a {src.title} batch: labels outside 0..{src.classes - 1}", file=path
            )
        datas.append(d)
        labels.append(lab)
    # Rows are R plane, G plane, B plane, each 32x32 row-major: a plain reshape gives NCHW.
    images = np.concatenate(datas).reshape(-1, 3, 32, 32)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(np.concatenate(labels))


# --------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------


def _safe_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """Vet every member before extraction: no absolute paths, no escapes, no links/devices."""
    dest = dest.resolve()
    members = []
    for m in tar.getmembers():
        target = (dest / m.name).resolve()
        if os.path.isabs(m.name) or (target != dest and dest not in target.parents):
            raise HwcostError(f"refusing to extract {m.name!r}: it points outside {dest}")
        if not (m.isfile() or m.isdir()):
            raise HwcostError(f"refusing to extract {m.name!r}: not a regular file or folder")
        members.append(m)
    return members


def _extract(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = _safe_members(tar, dest)
            if hasattr(tarfile, "data_filter"):  # belt and braces where Python offers it
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise HwcostError(f"cannot extract {archive}: {exc}", file=archive) from exc


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_cifar(root: str | Path, name: str = "cifar10") -> Path:
    """Fetch, verify and extract the official CIFAR tarball into ``root``; return the folder.

    The tarball is written to a temp file and renamed only once complete and md5-verified, so an
    interrupted download never leaves a plausible-looking but truncated archive behind.  Data
    already present is not fetched again.
    """
    src = _source(name)
    root = Path(root)
    folder = root / src.folder
    if all((folder / f).is_file() for f in src.train_files + src.test_files):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    archive = root / src.archive
    if not (archive.is_file() and _md5(archive) == src.md5):
        hint = f"download {src.archive} by hand and extract it into {root}"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{src.archive}.", suffix=".part", dir=root)
        tmp = Path(tmp_name)
        try:
            h = hashlib.md5()
            with os.fdopen(fd, "wb") as out:
                try:
                    with urllib.request.urlopen(src.url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                        for chunk in iter(lambda: resp.read(1 << 20), b""):
                            h.update(chunk)
                            out.write(chunk)
                except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                    reason = getattr(exc, "reason", None) or exc
                    raise HwcostError(
                        f"cannot download {src.title} (offline?): {reason}; {hint}"
                    ) from exc
            if h.hexdigest() != src.md5:
                raise HwcostError(
                    f"downloaded {src.archive} has md5 {h.hexdigest()}, expected {src.md5} "
                    f"(corrupted or tampered download); {hint}"
                )
            os.replace(tmp, archive)
        finally:
            if tmp.exists():
                tmp.unlink()
    _extract(archive, root)
    missing = [f for f in src.train_files + src.test_files if not (folder / f).is_file()]
    if missing:
        raise HwcostError(f"{archive} did not contain {src.folder}/{missing[0]}", file=archive)
    return folder


# --------------------------------------------------------------------------------------------
# Synthetic task
# --------------------------------------------------------------------------------------------


def synthetic(
    n: int, classes: int = 10, size: int = 32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A small learnable image task for smoke runs and CI without CIFAR on disk.

    Class ``c`` is an oriented sinusoidal grating (angle and spatial frequency depend on ``c``)
    tinted with a class colour, with random phase, random contrast and pixel noise.  Colour makes
    it linearly separable enough for a sanity check; orientation/frequency reward convolutions.
    Deterministic for ``seed``: a cached search can be replayed bit for bit.
    """
    if n < 0 or classes < 1 or size < 1:
        raise HwcostError(f"synthetic data needs n >= 0, classes >= 1, size >= 1 (got {n}, "
                          f"{classes}, {size})")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    # Per-class parameters, fixed by class index so that every seed gives the same task.
    c = np.arange(classes)
    angle = np.pi * c / classes
    freq = 2 * np.pi * (2.0 + (c % 3)) / size  # 2, 3 or 4 cycles across the image
    hue = 2 * np.pi * c / classes
    tint = 0.5 + 0.5 * np.stack([np.cos(hue), np.cos(hue - 2.094), np.cos(hue + 2.094)], 1)

    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    a, f = angle[labels], freq[labels]
    phase = rng.uniform(0, 2 * np.pi, size=n)
    proj = (np.cos(a)[:, None, None] * xx + np.sin(a)[:, None, None] * yy) * f[:, None, None]
    grating = np.sin(proj + phase[:, None, None])  # (n, size, size)
    contrast = rng.uniform(0.15, 0.3, size=n)
    col = tint[labels]  # (n, 3)
    img = (
        0.5
        + 0.15 * (col[:, :, None, None] - 0.5)
        + contrast[:, None, None, None] * grating[:, None] * (0.4 + 0.6 * col[:, :, None, None])
        + rng.normal(0.0, 0.12, size=(n, 3, size, size))
    )
    pixels = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64))


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------


def normalize(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Per-channel standardisation to float32 (uint8 is scaled by 1/255; floats taken as 0..1)."""
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


@dataclass(frozen=True)
class Augment:
    """The DARTS training augmentation as batched torch ops with an explicit generator.

    Batched (not per-image PIL transforms) because it runs in the training loop's process; an
    explicit ``torch.Generator`` so the draws are a pure function of the batch's seed.
    """

    padding: int = 4
    flip: bool = True
    cutout: int = 0

    def crop(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Zero-pad by ``padding`` and take a random crop of the original size per image."""
        p = self.padding
        if p <= 0:
            return x
        b, _, h, w = x.shape
        padded = F.pad(x, (p, p, p, p))
        oy = torch.randint(0, 2 * p + 1, (b,), generator=g)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=g)
        rows = oy[:, None] + torch.arange(h)  # (b, h)
        cols = ox[:, None] + torch.arange(w)  # (b, w)
        idx = torch.arange(b)[:, None, None]
        out = padded[idx, :, rows[:, :, None], cols[:, None, :]]  # (b, h, w, c)
        return out.permute(0, 3, 1, 2).contiguous()

    def hflip(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Mirror each image left-right with probability 1/2."""
        if not self.flip:
            return x
        mask = torch.rand(x.shape[0], generator=g) < 0.5
        return torch.where(mask[:, None, None, None], x.flip(-1), x)

    def apply_cutout(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Zero a ``cutout``-sided square (clipped at the border) centred uniformly per image.

        Applied after normalisation in the pipeline, as in DARTS, so the hole is the data mean.
        """
        length = self.cutout
        if length <= 0:
            return x
        b, _, h, w = x.shape
        cy = torch.randint(0, h, (b,), generator=g)
        cx = torch.randint(0, w, (b,), generator=g)
        ys, xs = torch.arange(h), torch.arange(w)
        y0, x0 = (cy - length // 2)[:, None], (cx - length // 2)[:, None]
        in_y = (ys >= y0) & (ys < y0 + length)  # (b, h)
        in_x = (xs >= x0) & (xs < x0 + length)  # (b, w)
        hole = in_y[:, :, None] & in_x[:, None, :]
        return x.masked_fill(hole[:, None], 0)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Crop, flip, then cutout (on whatever dtype ``x`` has)."""
        return self.apply_cutout(self.hflip(self.crop(x, g), g), g)


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------


def _generator(*key: int) -> torch.Generator:
    """A torch generator seeded from a tuple, so (seed, stream, epoch) streams never collide."""
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in key]).generate_state(2)
    return torch.Generator().manual_seed(((int(state[0]) << 32) | int(state[1])) >> 1)


@dataclass
class Batches:
    """A deterministic, resumable iterable of ``(x float32 normalised, y int64)`` batches.

    Batch ``i`` of epoch ``e`` depends only on ``(seed, stream, e)``, never on how many batches
    were drawn before, so a run resumed at epoch ``e`` sees exactly what it would have seen.
    Iterating uses :attr:`epoch`; call :meth:`set_epoch` (or :meth:`epoch_batches`) each epoch.
    """

    images: torch.Tensor = field(repr=False)  # uint8 (N, 3, H, W), the whole pool
    labels: torch.Tensor = field(repr=False)  # int64 (N,)
    indices: torch.Tensor = field(repr=False)  # which rows of the pool this iterable serves
    batch_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    augment: Augment | None = None
    shuffle: bool = True
    seed: int = 0
    stream: int = 0
    epoch: int = 0

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = _generator(self.seed, self.stream, epoch)
        order = self.indices
        if self.shuffle:
            order = order[torch.randperm(len(order), generator=g)]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            x = self.images[rows]
            if self.augment is not None:
                x = self.augment.hflip(self.augment.crop(x, g), g)
            x = normalize(x, self.mean, self.std)
            if self.augment is not None:
                x = self.augment.apply_cutout(x, g)
            yield x, self.labels[rows]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.epoch_batches(self.epoch)


def _load_split(
    dataset: str, data_dir: str | Path, train: bool, download: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if download:
        download_cifar(data_dir, dataset)
    return load_cifar(data_dir, dataset, train=train)


#: data sets whose images must not be mirrored in augmentation
NO_MIRROR = ("digits", "svhn")


def make_loaders(
    dataset: str,
    data_dir: str | Path,
    batch_size: int,
    search: bool = True,
    train_portion: float = 0.5,
    cutout: int = 0,
    download: bool = False,
    seed: int = 0,
    synthetic_size: int = 2048,
    synthetic_classes: int = 10,
    augment: bool = True,
    input_size: int | None = None,
) -> tuple[Batches, Batches]:
    """Build the two iterables a DARTS run needs.

    ``search=True``: the training set is shuffled with ``seed`` and split; the first
    ``train_portion`` trains the weights, the rest the architecture (both augmented, as in
    DARTS).  ``search=False``: the full training set (augmented) and the test set (plain).
    ``synthetic_size`` is the synthetic training-set size; its test set is a quarter of that.
    ``input_size`` resizes the images (the ``folder`` images always are: default 32; the
    ``digits`` ones too: default 16); the ``digits``, ``folder``, ``npz`` and ``svhn`` data
    sets normalise with their training split's statistics.
    """
    if dataset not in DATASETS:
        raise HwcostError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if batch_size < 1:
        raise HwcostError(f"batch size must be >= 1, got {batch_size}")
    if search and not 0.0 < train_portion < 1.0:
        raise HwcostError(f"train portion must be strictly between 0 and 1, got {train_portion}")

    if dataset == "synthetic":
        n_test = max(1, synthetic_size // 4)
        imgs, labs = synthetic(synthetic_size + n_test, classes=synthetic_classes,
                               seed=SYNTHETIC_DATA_SEED)
        train_x, train_y = imgs[:synthetic_size], labs[:synthetic_size]
        test_x, test_y = imgs[synthetic_size:], labs[synthetic_size:]
        mean, std, classes = _SYNTHETIC_MEAN, _SYNTHETIC_STD, synthetic_classes
    elif dataset in FILE_DATASETS or dataset == "digits":
        from nas import data_files

        if dataset == "digits":      # scikit-learn's real scans, upsampled
            from nas.digits import load_digits

            files = load_digits(input_size)
        elif dataset == "folder":
            files = data_files.load_folder(data_dir, input_size or 32)
        elif dataset == "npz":
            files = data_files.load_npz(data_dir, input_size)
        else:
            files = data_files.load_svhn(data_dir, input_size)
        train_x, train_y = files.train.images, files.train.labels
        test_x, test_y = files.test.images, files.test.labels
        mean, std = data_files.channel_stats(train_x)
        classes = files.classes
    else:
        src = _SOURCES[dataset]
        train_x, train_y = _load_split(dataset, data_dir, True, download)
        test_x = test_y = None
        if not search:
            test_x, test_y = load_cifar(data_dir, dataset, train=False)
        mean, std, classes = src.mean, src.std, src.classes
    if input_size is not None and dataset not in (*FILE_DATASETS, "digits"):
        from nas.data_files import resize

        train_x = resize(train_x, input_size)
        test_x = None if test_x is None else resize(test_x, input_size)

    # DARTS's CIFAR augmentation (4-pixel shifts of a 32-pixel image, mirror images), shifts
    # scaled to the image (a 4-pixel shift moves an 8-pixel digit half off the frame); no
    # mirroring of digits and house numbers, whose mirror image is another symbol
    pad = max(1, round(int(train_x.shape[-1]) / 8))
    aug = (Augment(padding=pad, flip=dataset not in NO_MIRROR, cutout=cutout)
           if augment else None)
    common = dict(batch_size=batch_size, mean=tuple(mean), std=tuple(std), num_classes=classes,
                  seed=seed)
    if search:
        n = len(train_y)
        split = math.floor(train_portion * n)
        if split == 0 or split == n:
            raise HwcostError(
                f"train portion {train_portion} of {n} samples leaves one search split empty"
            )
        perm = torch.randperm(n, generator=_generator(seed, 0xDA575))
        weights = Batches(train_x, train_y, perm[:split], augment=aug, stream=1, **common)
        arch = Batches(train_x, train_y, perm[split:], augment=aug, stream=2, **common)
        return weights, arch
    assert test_x is not None and test_y is not None
    train = Batches(train_x, train_y, torch.arange(len(train_y)), augment=aug, stream=3, **common)
    test = Batches(test_x, test_y, torch.arange(len(test_y)), augment=None, shuffle=False,
                   stream=4, **common)
    return train, test
