"""Normalisation layers: local response normalisation across channels, and batch normalisation.

LocalResponseNorm divides each activation by a power of the energy of its
neighbouring channels at the same pixel (AlexNet, cuda-convnet's ``cmrnorm``).
BatchNorm2D standardises each channel with the statistics of the batch while
training and with running averages of them in evaluation (PyTorch's
BatchNorm2d, state dict included).

Both work on logically NCHW arrays and do their channel arithmetic on whole
channel planes, which are contiguous when the input is channel-major (as a
convolution's output is); the output keeps the input's memory order, and the
results do not depend on it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minidl import checks
from minidl.layers.base import Layer, is_channel_major, keeps, new_nchw
from minidl.parameter import Parameter


def window_sum(v: np.ndarray, before: int, after: int) -> np.ndarray:
    """Sums over a window of channels: ``out[:, c] = sum(v[:, c - before : c + after + 1])``.

    Channels outside ``0 .. C-1`` count as zero. Running sums along the channel
    axis, restarted every ``size = before + after + 1`` channels, give every
    window as the sum of two of them (van Herk / Gil-Werman): the cost does not
    grow with the window, and unlike differences of one running sum over all
    channels nothing cancels, so a large activation in one channel cannot swamp
    the small sums of windows far from it. Each step adds whole channel planes,
    contiguous when ``v`` is channel-major; ``v``'s memory order is kept.

    Parameters
    ----------
    v : array ``(N, C, H, W)``
    before, after : int >= 0
        Channels included before and after the centre.

    Returns
    -------
    array ``(N, C, H, W)``, of ``v``'s dtype and memory order.
    """
    n, c, h, w = v.shape
    size = before + after + 1
    if size == 1:
        return v.copy(order="K")
    # Channel c' sits at position c' + before of a zero-padded axis cut into blocks of
    # `size`; the window of channel c is then positions c .. c + size - 1.
    length = -(-(c + size - 1) // size) * size
    suffix = new_nchw(np.zeros, (n, length, h, w), v.dtype, is_channel_major(v))
    suffix[:, before:before + c] = v
    prefix = suffix.copy(order="K")
    for j in range(length - 2, -1, -1):         # suffix[j] = sum(v[j : end of j's block])
        if (j + 1) % size:
            suffix[:, j] += suffix[:, j + 1]
    for j in range(1, length):                  # prefix[j] = sum(v[start of j's block : j+1])
        if j % size:
            prefix[:, j] += prefix[:, j - 1]
    # A window that starts a block is that block: its suffix alone, nothing from the next.
    prefix[:, size - 1::size] = 0
    return suffix[:, :c] + prefix[:, size - 1:size - 1 + c]


class LocalResponseNormCache(NamedTuple):
    """What LocalResponseNorm.backward needs from forward (each ``(N, C, H, W)``)."""

    x: np.ndarray            #: the input ``a``
    denominator: np.ndarray  #: ``d = k + alpha / size * sum_window a**2``
    scale: np.ndarray        #: ``d ** -beta``, so the output is ``a * scale``


class LocalResponseNorm(Layer):
    """Local response normalisation across channels (PyTorch's and Caffe's convention).

    ::

        b[c] = a[c] / (k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} a[c']**2) ** beta

    at every pixel. The window is PyTorch's for every size
    (``size=4``: channels ``c-2 .. c+1``); it is clipped at the first and last
    channel (missing channels count as zero) while the divisor stays ``size``.
    ``alpha`` is divided by ``size`` (PyTorch, Caffe, cuda-convnet).

    Other conventions
    -----------------
    **AlexNet paper** (Krizhevsky, Sutskever and Hinton 2012, section 3.3)::

        b_c = a_c / (k + alpha_paper * sum_{c' = c - n/2}^{c + n/2} a_c'^2) ** beta

    with ``k = 2, n = 5, alpha_paper = 1e-4, beta = 0.75``: ``alpha_paper`` is
    *not* divided by ``n``, so ``alpha = n * alpha_paper``::

        LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)

    **cuda-convnet's** ``cmrnorm`` (cross-map response normalisation; Krizhevsky's
    code). Its ``layer.py`` (``NormLayerParser.add_params``) divides the layer
    parameter ``scale`` by ``size`` for ``cmrnorm`` (by ``size**2`` for the
    same-map ``rnorm``), and its CUDA kernel (``kFCNorm`` in
    ``src/cudaconv2/conv_util.cu``) computes::

        denom = 1 + (scale / size) * sum_{f' = f - size//2}^{f - size//2 + size - 1} a_f'^2
        b_f   = a_f * denom ** -pow

    with the window clipped to ``0 .. F-1``, which is the window above. So
    ``scale``, ``pow`` and ``size`` map one to one and the additive constant is 1::

        LocalResponseNorm(size, alpha=scale, beta=pow, k=1.0)

    cuda-convnet2's ``layer.py`` adds ``minDiv`` (default 1.0) as the additive
    constant: ``k=minDiv``. The ``blocked=1`` option (disjoint groups of channels)
    and the same-map ``rnorm`` (a ``size x size`` spatial window within each map)
    are other operations, not this layer. (Read in the public copies of the code:
    github.com/dnouri/cuda-convnet, ``layer.py`` and ``src/cudaconv2/conv_util.cu``;
    github.com/akrizhevsky/cuda-convnet2, ``layer.py``.)

    Parameters
    ----------
    size : int >= 1
        Channels in the window.
    alpha : float >= 0
        Scale of the sum of squares, divided by ``size``.
    beta : float >= 0
        Exponent.
    k : float > 0
        Additive constant. Strictly positive: with ``alpha >= 0`` it keeps the
        denominator at least ``k``, so ``d ** -beta`` is finite for every input.
        With ``k = 0`` an all-zero window (common after ReLU) gives 0/0, and a
        rounding error in a small window sum would be the whole denominator.

    Shape
    -----
    input ``(N, C, H, W)`` of any float dtype; output of the same shape, dtype and
    memory order. No parameters.

    Notes
    -----
    The window sums are built from running sums over the channels (see
    :func:`window_sum`), a few vectorised passes whatever ``size``, and sum only
    non-negative squares: their relative rounding error is at most about
    ``size * eps``. The cache keeps the input and two arrays of its size (the
    denominator and its power).
    """

    per_example = True

    default_name = "lrn"

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 1.0) -> None:
        super().__init__()
        owner = f"LocalResponseNorm(size={size!r})"
        self.size = checks.integer(size, "size", owner, minimum=1)
        self.alpha = checks.real(alpha, "alpha", owner, minimum=0.0)
        self.beta = checks.real(beta, "beta", owner, minimum=0.0)
        self.k = checks.real(k, "k", owner, minimum=0.0, strict_min=True)

    def get_config(self) -> dict[str, Any]:
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        x = self._check_images(x)
        dtype = x.dtype.type
        before, after = self.size // 2, (self.size - 1) // 2
        denominator = window_sum(np.square(x), before, after)
        denominator *= dtype(self.alpha / self.size)
        denominator += dtype(self.k)
        scale = np.power(denominator, dtype(-self.beta))
        keep = keeps(training, keep_for_backward)
        self._cache = LocalResponseNormCache(x, denominator, scale) if keep else None
        return x * scale

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        x, denominator, scale = self._saved()
        self._check_dy(dy, x.shape)
        if not input_grad:
            return None
        # b_c = a_c d_c^-beta with d_c = k + alpha/n sum_{c' in window(c)} a_c'^2, so
        #   dL/da_j = dy_j d_j^-beta - 2 alpha beta / n * a_j * sum_{c: j in window(c)} t_c,
        #   t_c = dy_c b_c / d_c;
        # j is in window(c) for c in j - after .. j + before: the mirrored window.
        t = dy * x
        t *= scale
        t /= denominator
        back = window_sum(t, (self.size - 1) // 2, self.size // 2)
        back *= x
        back *= dy.dtype.type(2 * self.alpha * self.beta / self.size)
        dx = dy * scale
        dx -= back
        return dx


class BatchNormCache(NamedTuple):
    """What BatchNorm2D.backward needs from forward."""

    #: ``(C, N * H * W)``: the normalised input ``(x - mean) / sqrt(var + eps)``,
    #: channel-major.
    x_hat: np.ndarray
    inv_std: np.ndarray                           #: ``(C,)``: ``1 / sqrt(var + eps)``
    batch_statistics: bool                        #: mean and var were the batch's
    input_shape: tuple[int, int, int, int]


class BatchNorm2D(Layer):
    """Batch normalisation over ``(N, H, W)`` for each channel (PyTorch's BatchNorm2d).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel.

    * Training (``training=True``): ``mean`` and ``var`` are the batch's, the
      variance *biased* (divided by ``N * H * W``). The running statistics are
      updated as ``running = (1 - momentum) * running + momentum * batch_stat``,
      with the *unbiased* variance for ``running_var``, and
      ``num_batches_tracked`` counts the updates. A channel needs more than one
      value (``N * H * W > 1``).
    * Evaluation (``training=False``): ``running_mean`` and ``running_var``, left
      unchanged. The layer is then an affine map per channel; with
      ``keep_for_backward=True`` it has a backward pass too.

    The state dict has PyTorch's keys, shapes and dtypes: ``weight``, ``bias``,
    ``running_mean``, ``running_var`` (``(C,)``, the layer's dtype) and
    ``num_batches_tracked`` (0-d int64), so it loads into
    ``torch.nn.BatchNorm2d`` and back.

    Parameters
    ----------
    num_features : int >= 1
        The number of channels ``C``.
    eps : float > 0
        Added to the variance.
    momentum : float in [0, 1]
        Weight of the newest batch in the running statistics.
    dtype : numpy dtype
        float32 by default; the statistics are computed in it.

    Shape
    -----
    input ``(N, num_features, H, W)`` of the layer's dtype; output of the same
    shape and memory order (channel-major in, channel-major out; anything else
    comes out C-contiguous). ``weight``, ``bias``, ``running_mean``,
    ``running_var``: ``(num_features,)``.

    Notes
    -----
    The statistics are computed in passes over the data, all by NumPy's pairwise
    summation: the mean; the mean of the deviations from it, which is the rounding
    error of the mean and is subtracted (the corrected two-pass algorithm of Chan,
    Golub and LeVeque); then the mean of the squared deviations. So float32 keeps
    close to full precision even when the mean is large compared with the spread
    (``E[x**2] - E[x]**2`` would lose it all). The work is done on a
    channel-major ``(C, N * H * W)`` copy of the input (no copy when the input is
    channel-major already).
    """

    default_name = "bn"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: Any = np.float32) -> None:
        super().__init__()
        owner = f"BatchNorm2D(num_features={num_features!r})"
        self.num_features = checks.integer(num_features, "num_features", owner, minimum=1)
        self.eps = checks.real(eps, "eps", owner, minimum=0.0, strict_min=True)
        self.momentum = checks.real(momentum, "momentum", owner, minimum=0.0, maximum=1.0)
        self.dtype = checks.float_dtype(dtype, owner)
        c = self.num_features
        self.weight = Parameter(np.ones(c, self.dtype), "weight")
        self.bias = Parameter(np.zeros(c, self.dtype), "bias")
        self.register_buffer("running_mean", np.zeros(c, self.dtype))
        self.register_buffer("running_var", np.ones(c, self.dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def get_config(self) -> dict[str, Any]:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "dtype": self.dtype.name}

    def __repr__(self) -> str:
        extra = "" if self.dtype == np.float32 else f", dtype={self.dtype.name}"
        return (f"BatchNorm2D({self.num_features}, eps={self.eps:g}, "
                f"momentum={self.momentum:g}{extra})")

    def forward(self, x: np.ndarray, training: bool = True,
                keep_for_backward: bool | None = None) -> np.ndarray:
        x = self._check_images(x, self.num_features, self.dtype)
        n, c, h, w = x.shape
        count = n * h * w
        if training and count < 2:
            raise ValueError(
                f"{self.label()}: expected more than 1 value per channel in training mode "
                f"(N * H * W > 1), received input of shape {x.shape}")
        dtype = self.dtype.type
        channel_major = is_channel_major(x)
        # (C, N*H*W) with each channel's values contiguous: free for a channel-major input.
        x_cm = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(c, count)

        if training:
            mean = x_cm.mean(axis=1)
            x_hat = x_cm - mean[:, None]
            # The mean is off by its rounding, up to a few ulps of a large mean; the
            # centred values measure that error exactly enough to remove it.
            residual = x_hat.mean(axis=1)
            x_hat -= residual[:, None]
            mean += residual
            var = np.square(x_hat).mean(axis=1)                 # biased: divided by N*H*W
            self._update_running_statistics(mean, var * dtype(count / (count - 1)))
        else:
            mean, var = self.running_mean, self.running_var
            x_hat = x_cm - mean[:, None]
        inv_std = dtype(1) / np.sqrt(var + dtype(self.eps))
        x_hat *= inv_std[:, None]
        y = x_hat * self.weight.data[:, None]
        y += self.bias.data[:, None]

        keep = keeps(training, keep_for_backward)
        self._cache = BatchNormCache(x_hat, inv_std, bool(training), x.shape) if keep else None
        out = y.reshape(c, n, h, w).transpose(1, 0, 2, 3)
        return out if channel_major else np.ascontiguousarray(out)

    def _update_running_statistics(self, mean: np.ndarray, unbiased_var: np.ndarray) -> None:
        # In place: the buffers are the arrays the state dict and any reader hold.
        m = self.dtype.type(self.momentum)
        keep = self.dtype.type(1 - self.momentum)
        self.running_mean *= keep
        self.running_mean += m * mean
        self.running_var *= keep
        self.running_var += m * unbiased_var
        self.num_batches_tracked += 1

    def backward(self, dy: np.ndarray, *, input_grad: bool = True) -> np.ndarray | None:
        x_hat, inv_std, batch_statistics, shape = self._saved()
        self._check_dy(dy, shape)
        n, c, h, w = shape
        count = n * h * w
        dy_cm = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(c, count)
        dbias = dy_cm.sum(axis=1)
        dweight = (dy_cm * x_hat).sum(axis=1)
        self.bias.grad += dbias
        self.weight.grad += dweight
        if not input_grad:
            return None
        gain = (self.weight.data * inv_std)[:, None]
        if batch_statistics:
            # The mean and variance depend on every input of the channel:
            # dx = weight * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)).
            dx = x_hat * (dweight / count)[:, None]
            np.subtract(dy_cm, dx, out=dx)
            dx -= (dbias / count)[:, None]
            dx *= gain
        else:
            dx = dy_cm * gain                                   # a fixed affine map
        out = dx.reshape(c, n, h, w).transpose(1, 0, 2, 3)
        return out if is_channel_major(dy) else np.ascontiguousarray(out)
