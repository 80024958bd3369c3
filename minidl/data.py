"""Batching and augmentation, driven by explicit Generators.

Every random choice takes a ``np.random.Generator``: the trainer derives one
from ``(seed, epoch)`` for the order of an epoch and one from
``(seed, epoch, step)`` for each batch's augmentation, so a resumed run draws
exactly what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from minidl import checks

__all__ = ["batch_indices", "random_shift", "random_flip", "Augmentation"]


def batch_indices(n: int, batch_size: int, rng: np.random.Generator | None = None,
                  drop_last: bool = False) -> list[np.ndarray]:
    """Split ``range(n)`` into batches, shuffled when ``rng`` is given.

    Returns
    -------
    list of int arrays
        Each of length ``batch_size`` except possibly the last
        (dropped when ``drop_last``).
    """
    batch_size = checks.integer(batch_size, "batch_size", "batch_indices", minimum=1)
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator,
                 fill: float | Sequence[float] = 0.0) -> np.ndarray:
    """Translate each image by its own random offset in ``[-max_shift, max_shift]`` (rows and
    columns drawn independently); vacated pixels take ``fill`` (a number, or one per channel).

    The same as padding by ``max_shift`` and cropping at a random position
    (torchvision's ``RandomCrop(size, padding=max_shift)``).

    Shape
    -----
    ``(N, C, H, W)`` in and out (a new array).
    """
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    out = np.empty_like(x)
    out[...] = np.asarray(fill, x.dtype).reshape(-1, 1, 1) if np.ndim(fill) else fill
    s = max_shift
    dy, dx = rng.integers(-s, s + 1, size=(2, n))
    # One slice copy per image: far cheaper than a fancy-indexed gather of every pixel.
    for i, (a, b) in enumerate(zip(dy.tolist(), dx.tolist())):
        out[i, :, max(a, 0):h + min(a, 0), max(b, 0):w + min(b, 0)] = \
            x[i, :, max(-a, 0):h - max(a, 0), max(-b, 0):w - max(b, 0)]
    return out


def random_flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each image left-right with probability 1/2.

    Shape
    -----
    ``(N, C, H, W)`` in and out (flipped in place when ``x`` is writable and owns its data).
    """
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip, :, :, ::-1]
    return x


@dataclass(frozen=True)
class Augmentation:
    """Random shifts and horizontal flips of prepared (normalised) images, drawn per image.

    Parameters
    ----------
    shift : int
        Each image moves by up to ``shift`` pixels up/down and left/right; vacated
        pixels take ``fill``. 0: off.
    flip : bool
        Mirror each image left-right with probability 1/2 (right for photographs
        such as CIFAR-10, wrong for digits).
    fill : float or tuple of float
        The value of a black pixel after normalisation, one per channel
        (:attr:`minidl.rundir.InputSpec.fill`).

    Calling it draws the shifts first, then the flips, from the generator given,
    so the same generator state gives the same batch.
    """

    shift: int = 0
    flip: bool = False
    fill: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        checks.integer(self.shift, "shift", "Augmentation", minimum=0)
        checks.boolean(self.flip, "flip", "Augmentation")

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.shift:
            x = random_shift(x, self.shift, rng, self.fill)
        if self.flip:
            x = random_flip(x, rng)
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"shift": self.shift, "flip": self.flip}
