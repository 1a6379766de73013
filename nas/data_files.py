"""Datasets from the user's own files: an ImageFolder tree, an ``.npz`` of arrays, SVHN ``.mat``.

Every reader returns uint8 NCHW images with 3 channels (grayscale is repeated: the DARTS stem
takes RGB) at ``size`` x ``size`` and int64 labels ``0 .. classes - 1``, for the train and
the test split, so the rest of :mod:`nas.data` treats them like CIFAR.  Normalisation
statistics are computed from the training split (:func:`channel_stats`), never from test
data.  Mistakes (a missing split, an empty class, mixed image sizes in an array file, a
corrupt image, a wrong layout) raise one :class:`HwcostError` naming the file.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import HwcostError
from core.limits import Limit
from core.untrusted import read_npy, refuse_special_file
from darts.macro import MAX_CLASSES

#: a data set file is read whole into memory (CIFAR-10 is 180 MB)
MAX_DATASET_BYTES = Limit("HWCOST_MAX_DATASET_BYTES", 8 * 2**30, "bytes of one data array")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Split:
    images: torch.Tensor   # uint8 (N, 3, size, size)
    labels: torch.Tensor   # int64 (N,)


@dataclass
class FileDataset:
    train: Split
    test: Split
    classes: int
    class_names: list[str]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 NCHW to ``size`` x ``size`` (bilinear with antialiasing; unchanged if equal)."""
    if images.shape[-2:] == (size, size):
        return images
    x = F.interpolate(images.to(torch.float32), size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _to_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images on the 0..1 scale (float64 sums)."""
    x = images.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp(min=1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


# --------------------------------------------------------------------------------------------
# .npz


def _npz_images(arr: np.ndarray, path: Path, key: str) -> torch.Tensor:
    if arr.dtype != np.uint8:
        raise HwcostError(f"{key} must be uint8 images, got {arr.dtype}", file=path)
    if arr.ndim == 3:                                   # (N, H, W) grayscale
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)                 # NHWC -> NCHW
    elif not (arr.ndim == 4 and arr.shape[1] in (1, 3)):
        raise HwcostError(f"{key} has shape {arr.shape}; expected (N, H, W), (N, H, W, C) or "
                          "(N, C, H, W) with C = 1 or 3", file=path)
    if arr.shape[0] < 1 or arr.shape[2] < 1 or arr.shape[3] < 1:
        raise HwcostError(f"{key} holds no pixels (shape {arr.shape}): images need at least "
                          "one image of at least 1x1", file=path)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _npz_labels(arr: np.ndarray, path: Path, key: str, n: int) -> torch.Tensor:
    arr = np.asarray(arr).reshape(-1) if np.asarray(arr).ndim == 2 else np.asarray(arr)
    if arr.ndim != 1 or len(arr) != n:
        raise HwcostError(f"{key} must hold one label per image ({n}), got shape {arr.shape}",
                          file=path)
    if not np.issubdtype(arr.dtype, np.integer):
        raise HwcostError(f"{key} must be integer class indices, got {arr.dtype}", file=path)
    if n and arr.min() < 0:
        raise HwcostError(f"{key} has a negative label {int(arr.min())}", file=path)
    if n and int(arr.max()) >= MAX_CLASSES.value:   # before int64: uint64 2**64-1 wraps to -1
        raise HwcostError(f"{key} has a label {int(arr.max()):,}; class indices are "
                          f"0..{MAX_CLASSES.value - 1:,} (set {MAX_CLASSES.env} to allow more)",
                          file=path)
    return torch.from_numpy(arr.astype(np.int64))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays, each header checked against the bytes really stored before anything
    is allocated (:func:`~core.untrusted.read_npy`): a damaged or hostile header (a
    shape of 10**12) must not reserve memory."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(name).stem: name for name in archive.namelist()
                       if name.endswith(".npy")}
            missing = [k for k in NPZ_KEYS if k not in members]
            if missing:
                raise HwcostError(f"missing array(s) {', '.join(missing)}; expected "
                                  + ", ".join(NPZ_KEYS), file=path)
            arrays = {}
            for key in NPZ_KEYS:
                info = archive.getinfo(members[key])
                MAX_DATASET_BYTES.check(info.file_size, file=path, context=key)

                def fits(shape, dtype, stored=info.file_size):
                    need = math.prod(shape) * dtype.itemsize
                    return (None if need <= stored else f"claims shape {shape} ({need:,} "
                            f"bytes) but holds {stored:,} bytes: truncated or damaged")

                with archive.open(info) as fh:
                    arrays[key] = read_npy(fh, fits, file=path, what=key)
            return arrays
    except HwcostError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error,
            NotImplementedError, KeyError) as err:
        raise HwcostError(f"not a readable .npz file ({type(err).__name__}: {err})",
                          file=path) from None


def load_npz(path: str | Path, size: int | None = None) -> FileDataset:
    """Arrays ``x_train, y_train, x_test, y_test`` (uint8 images NHWC, NCHW or NHW)."""
    path = Path(path)
    if not path.is_file():
        raise HwcostError("no such .npz file (expected arrays " + ", ".join(NPZ_KEYS) + ")",
                          file=path)
    arrays = _read_npz(path)
    splits = []
    for part in ("train", "test"):
        x = _npz_images(arrays[f"x_{part}"], path, f"x_{part}")
        y = _npz_labels(arrays[f"y_{part}"], path, f"y_{part}", len(x))
        if len(x) == 0:
            raise HwcostError(f"x_{part} holds no images", file=path)
        splits.append((x, y))
    (xtr, ytr), (xte, yte) = splits
    if xtr.shape[1:] != xte.shape[1:]:
        raise HwcostError(f"train images {tuple(xtr.shape[1:])} and test images "
                          f"{tuple(xte.shape[1:])} differ in shape", file=path)
    if xtr.shape[2] != xtr.shape[3] and size is None:
        raise HwcostError(f"images are {xtr.shape[2]}x{xtr.shape[3]}, not square; give "
                          "--input-size to resize them", file=path)
    classes = int(max(int(ytr.max()), int(yte.max())) + 1)
    MAX_CLASSES.check(classes, file=path, context="largest label + 1")
    missing_classes = sorted(set(range(classes)) - set(ytr.tolist()))
    if missing_classes:
        raise HwcostError(f"class {missing_classes[0]} has no training image (labels must be "
                          f"0..{classes - 1}, every class present in y_train)", file=path)
    target = size or int(xtr.shape[2])
    train = Split(resize(_to_rgb(xtr), target), ytr)
    test = Split(resize(_to_rgb(xte), target), yte)
    return FileDataset(train, test, classes, [str(c) for c in range(classes)])


# --------------------------------------------------------------------------------------------
# ImageFolder tree


def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    refuse_special_file(path)   # a FIFO named like an image would block open() forever
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise HwcostError(f"cannot decode image ({type(err).__name__}: {err})",
                          file=path) from None


def _folder_split(root: Path, part: str, size: int,
                  class_names: list[str] | None) -> tuple[Split, list[str]]:
    split_dir = root / part
    if not split_dir.is_dir():
        raise HwcostError(f"missing the {part}/ folder of the ImageFolder layout "
                          f"({part}/<class>/*.png|jpg)", file=root)
    dirs = sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise HwcostError(f"no class folders in {part}/ (expected {part}/<class>/*.png|jpg)",
                          file=split_dir)
    names = [d.name for d in dirs]
    if class_names is not None:
        unknown = [n for n in names if n not in class_names]
        if unknown:
            raise HwcostError(f"class {unknown[0]!r} is not among the training classes",
                              file=split_dir / unknown[0])
    index = {n: i for i, n in enumerate(class_names or names)}
    images, labels = [], []
    for d in dirs:
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise HwcostError("empty class: no .png/.jpg images", file=d)
        for f in files:
            images.append(_read_image(f, size))
            labels.append(index[d.name])
    return (Split(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)),
            names)


def load_folder(root: str | Path, size: int = 32) -> FileDataset:
    """``root/train/<class>/*.png|jpg`` and ``root/test/<class>/...``, resized to ``size``;
    class indices follow the sorted training class names."""
    root = Path(root)
    if not root.is_dir():
        raise HwcostError("no such data folder (expected train/<class>/ and test/<class>/)",
                          file=root)
    train, names = _folder_split(root, "train", size, None)
    test, _ = _folder_split(root, "test", size, names)
    return FileDataset(train, test, len(names), names)


# --------------------------------------------------------------------------------------------
# SVHN (.mat, read with scipy when it is installed)


def load_svhn(root: str | Path, size: int | None = None) -> FileDataset:
    """``train_32x32.mat`` and ``test_32x32.mat`` of SVHN's cropped digits (label 10 is 0)."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise HwcostError("reading SVHN's .mat files needs scipy: pip install scipy") from None
    root = Path(root)
    splits = []
    for part in ("train", "test"):
        path = root / f"{part}_32x32.mat"
        if not path.is_file():
            raise HwcostError(f"missing SVHN {part} split (download {path.name} from the SVHN "
                              "page into --data-dir)", file=path)
        try:
            mat = loadmat(path)
            x, y = mat["X"], mat["y"]
        except (KeyError, ValueError, OSError, NotImplementedError) as err:
            raise HwcostError(f"not an SVHN .mat file with X and y ({err})", file=path) from None
        if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8:
            raise HwcostError(f"X has shape {x.shape} and dtype {x.dtype}; expected uint8 "
                              "(32, 32, 3, N)", file=path)
        labels = np.asarray(y).reshape(-1).astype(np.int64) % 10
        images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
        splits.append(Split(resize(images, size or 32), torch.from_numpy(labels)))
    return FileDataset(splits[0], splits[1], 10, [str(i) for i in range(10)])
