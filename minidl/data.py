"""Batching, shuffling and light augmentation, driven by explicit Generators.

Every random choice takes a ``np.random.Generator`` so that the same seed gives
the same batches, and a run can be resumed from a saved generator state.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np


def batch_indices(n: int, batch_size: int, rng: np.random.Generator | None = None,
                  drop_last: bool = False) -> list[np.ndarray]:
    """Split ``range(n)`` into batches, shuffled when ``rng`` is given.

    Returns
    -------
    list of int arrays
        Each of length ``batch_size`` except possibly the last
        (dropped when ``drop_last``).
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_indices: expected a positive batch_size, received {batch_size!r}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def iterate(x: np.ndarray, y: np.ndarray, batch_size: int,
            rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(x[batch], y[batch])`` pairs; shuffled when ``rng`` is given."""
    if len(x) != len(y):
        raise ValueError(f"iterate: expected as many labels as inputs ({len(x)}), received {len(y)}")
    for index in batch_indices(len(x), batch_size, rng):
        yield x[index], y[index]


def images_to_tensor(images: np.ndarray, mean: float = 0.0, std: float = 1.0, pad: int = 0,
                     dtype: type = np.float32) -> np.ndarray:
    """uint8 images ``(N, H, W)`` -> normalised ``(N, 1, H + 2 pad, W + 2 pad)`` floats.

    Pixels are scaled to [0, 1], then ``(p - mean) / std``; padding uses the
    value of a black pixel, so a padded digit looks like a larger black canvas.
    """
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images_to_tensor: expected uint8 images of shape (N, H, W), "
                         f"received {images.dtype} {images.shape}")
    x = (images.astype(dtype) * dtype(1 / 255) - dtype(mean)) * dtype(1 / std)
    x = x[:, None]
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=dtype(-mean / std))
    return x


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator,
                 fill: float = 0.0) -> np.ndarray:
    """Translate each image by its own random offset in ``[-max_shift, max_shift]``.

    Shape
    -----
    ``(N, C, H, W)`` in and out; vacated pixels take ``fill``.
    """
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    s = max_shift
    padded = np.full((n, c, h + 2 * s, w + 2 * s), fill, dtype=x.dtype)
    padded[:, :, s:s + h, s:s + w] = x
    dy, dx = rng.integers(0, 2 * s + 1, size=(2, n))
    rows = dy[:, None] + np.arange(h)               # (N, H)
    cols = dx[:, None] + np.arange(w)               # (N, W)
    batch = np.arange(n)[:, None, None, None]
    chan = np.arange(c)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]
