"""Labelled images for training, resized to the spec's input: scikit-learn's digits, or a class-per-folder tree.

A dataset is two tensors (float32 NCHW images in [0, 1], int64 labels) and the
class names; the held-out split is a seeded permutation, so it is the same
in every run (and every process) with the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..ir import Network
from . import TrainError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Dataset:
    images: object  # torch.Tensor, float32 (N, C, H, W)
    labels: object  # torch.Tensor, int64 (N,)
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Split:
    train: Dataset
    test: Dataset


def image_shape(network: Network) -> tuple[int, int, int]:
    """The (C, H, W) the spec wants, or a TrainError if it does not take images."""
    if len(network.input_shape) != 3:
        shape = "x".join(map(str, network.input_shape))
        raise TrainError(f"the spec's input is a flat vector ({shape}); training data are images, so it needs CxHxW")
    return network.input_shape


def class_count(network: Network) -> int:
    """The number of classes the spec predicts: its output must be a flat vector of at least 2 scores."""
    if len(network.outputs) > 1:
        raise TrainError(
            f"the spec has {len(network.outputs)} outputs; `cnndsl train` trains a classifier with one output"
        )
    shape = network.output_shape
    if len(shape) != 1:
        raise TrainError(
            f"the spec's output has shape {'x'.join(map(str, shape))}, not a flat vector of class scores; "
            "end it with e.g. `-> gap -> fc(10)` or `-> flatten`"
        )
    if shape[0] < 2:
        raise TrainError(f"the spec's output has {shape[0]} score; a classifier needs at least 2")
    return shape[0]


def load(source: str, network: Network) -> Dataset:
    """`digits` or an image folder, resized to the spec's input, checked against its class count."""
    shape = image_shape(network)
    data = load_digits(shape) if source == "digits" else load_folder(Path(source), shape)
    expected = class_count(network)
    if len(data.classes) != expected:
        raise TrainError(
            f"{source}: {len(data.classes)} classes ({_preview(data.classes)}), but the spec's output has "
            f"{expected} scores; change the final layer to fc({len(data.classes)})"
        )
    return data


def load_digits(shape: tuple[int, int, int]) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), bilinear-resized to shape."""
    import torch
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # pixel values are 0..16
    return Dataset(_fit(images, shape), torch.tensor(digits.target, dtype=torch.int64), tuple(map(str, range(10))))


def _fit(images, shape):
    """Resize (N, C, h, w) images to shape (C, H, W): bilinear, grey channels repeated for colour specs."""
    import torch.nn.functional as F

    c, h, w = shape
    if tuple(images.shape[2:]) != (h, w):
        images = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
    if images.shape[1] != c:
        images = images.mean(1, keepdim=True).repeat(1, c, 1, 1)
    return images.contiguous()


def load_folder(root: Path, shape: tuple[int, int, int]) -> Dataset:
    """One sub-folder per class (sorted by name), images read with Pillow and resized to shape.

    Files are images by their suffix (IMAGE_SUFFIXES); anything else (a README, .DS_Store) is skipped,
    but an image file Pillow cannot read is an error naming it, never silently dropped.
    """
    import numpy as np
    import torch

    if not root.exists():
        raise TrainError(f"{root}: no such data folder (use --data digits, or a folder with one sub-folder per class)")
    if not root.is_dir():
        raise TrainError(f"{root}: not a folder; --data takes `digits` or a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise TrainError(f"{root}: no class sub-folders; put each class's images in its own sub-folder")
    files = []
    for label, name in enumerate(classes):
        found = sorted(
            p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not found:
            raise TrainError(
                f"{root / name}: empty class folder (no {', '.join(sorted(IMAGE_SUFFIXES))} files); "
                "every class needs at least one image"
            )
        files += [(p, label) for p in found]
    if len(files) < 2:
        raise TrainError(f"{root}: {len(files)} image; training needs at least 2 (one to train, one to test)")
    arrays = [_read_image(p, shape) for p, _ in files]
    images = torch.from_numpy(np.stack(arrays))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return Dataset(images, labels, tuple(classes))


def _read_image(path: Path, shape: tuple[int, int, int]):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if c == 3 else "L").resize((w, h), Image.Resampling.BILINEAR)
            array = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        reason = "not an image Pillow can read" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise TrainError(f"{path}: cannot read image ({reason})") from None
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    if array.shape[0] != c:  # neither grey nor RGB: repeat the grey image over the spec's channels
        array = np.repeat(array.mean(0, keepdims=True), c, axis=0)
    return np.ascontiguousarray(array)


def split(data: Dataset, seed: int, test_fraction: float = 0.2) -> Split:
    """A seeded held-out split: the same images are held out in every run with the same seed."""
    import torch

    n = len(data)
    n_test = min(n - 1, max(1, math.ceil(n * test_fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    test, train = order[:n_test], order[n_test:]
    return Split(
        Dataset(data.images[train], data.labels[train], data.classes),
        Dataset(data.images[test], data.labels[test], data.classes),
    )


def _preview(names, limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... {len(names) - limit} more" if len(names) > limit else "")
