"""Shared image-filtering helpers with OpenCV / SciPy border semantics.

Padding is done by index arithmetic, so every border mode works for any image size,
including pads wider than the image (where torch's own ``reflect`` refuses). On the
CPU the 2-D filters run through OpenCV itself (``filter2D`` / ``sepFilter2D``, the
originals' own library) plane by plane, which is several times faster than torch's
depthwise convolutions; the torch code serves other devices.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

CV2_BORDER = {"reflect101": 4, "nearest": 1, "symmetric": 2}
"""OpenCV's ``BORDER_REFLECT_101``, ``BORDER_REPLICATE`` and ``BORDER_REFLECT`` per mode."""


def use_cv2(x: torch.Tensor) -> bool:
    """Whether ``x`` is filtered by OpenCV (CPU float tensors without autograd)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad


def cv2_planes(x: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn(src_plane, dst_plane)`` (2-D NumPy views) to every H×W plane of a CPU tensor."""
    src = x.contiguous()
    out = torch.empty_like(src)
    h, w = src.shape[-2:]
    for a, b in zip(src.reshape(-1, h, w).numpy(), out.reshape(-1, h, w).numpy(), strict=True):
        fn(a, b)
    return out


def _reflect101_index(n: int, pad_before: int, pad_after: int, device) -> torch.Tensor:
    """Indices of OpenCV's BORDER_REFLECT_101 (``gfedcb|abcdefgh|gfedcba``)."""
    idx = torch.arange(-pad_before, n + pad_after, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx >= n, period - idx, idx)


def _nearest_index(n: int, pad_before: int, pad_after: int, device) -> torch.Tensor:
    """Indices of edge replication (OpenCV BORDER_REPLICATE, SciPy ``nearest``)."""
    return torch.arange(-pad_before, n + pad_after, device=device).clamp(0, n - 1)


def _symmetric_index(n: int, pad_before: int, pad_after: int, device) -> torch.Tensor:
    """Indices of SciPy's ``reflect`` (``dcba|abcd|dcba``, edge repeated)."""
    idx = torch.arange(-pad_before, n + pad_after, device=device).remainder(2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


BORDER_INDEX = {
    "reflect101": _reflect101_index,
    "nearest": _nearest_index,
    "symmetric": _symmetric_index,
}


def pad2d(x: torch.Tensor, ph: int, pw: int, mode: str) -> torch.Tensor:
    """Pad the last two dims of ``x`` by ``ph``/``pw`` on each side with a border mode."""
    index = BORDER_INDEX[mode]
    h, w = x.shape[-2:]
    x = x.index_select(-2, index(h, ph, ph, x.device))
    return x.index_select(-1, index(w, pw, pw, x.device))


def _direct_filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    kh, kw = kernel.shape
    c = x.shape[1]
    xp = pad2d(x, kh // 2, kw // 2, mode)
    weight = kernel.to(x.device, x.dtype).expand(c, 1, kh, kw)
    return F.conv2d(xp, weight, groups=c)


def _fft_filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Correlation by FFT of the border-padded image (exact up to float round-off)."""
    kh, kw = kernel.shape
    h, w = x.shape[-2:]
    xp = pad2d(x, kh // 2, kw // 2, mode)
    size = (-(-xp.shape[-2] // 8) * 8, -(-xp.shape[-1] // 8) * 8)  # FFT-friendly, ≥ padded size
    spec = torch.fft.rfft2(xp, s=size)
    kspec = torch.fft.rfft2(kernel.to(x.device, x.dtype), s=size)
    return torch.fft.irfft2(spec * kspec.conj(), s=size)[..., :h, :w]


def filter2d(x: torch.Tensor, kernel: torch.Tensor, mode: str = "reflect101") -> torch.Tensor:
    """Correlate every channel of ``x`` (N×C×H×W) with one 2-D ``kernel`` (odd sides, centred).

    Small kernels run as a direct convolution, larger ones through an FFT; both see the
    same border-padded image, so they agree up to float round-off.
    """
    kh, kw = kernel.shape
    if use_cv2(x):
        import cv2

        k = kernel.to(torch.float64).numpy()
        return cv2_planes(x, lambda a, b: cv2.filter2D(a, -1, k, dst=b, borderType=CV2_BORDER[mode]))
    if kh * kw <= 49:
        return _direct_filter2d(x, kernel, mode)
    return _fft_filter2d(x, kernel, mode)


@functools.lru_cache(maxsize=128)
def _filter_matrix(n: int, taps: tuple[float, ...], mode: str) -> torch.Tensor:
    """``M`` with ``y = x @ M`` the 1-D correlation of a length-``n`` signal with ``taps``
    under a border mode (the border folded into the matrix), float64."""
    r = len(taps) // 2
    out = torch.arange(n)
    m = torch.zeros(n, n, dtype=torch.float64)
    src = BORDER_INDEX[mode](n, r, r, None)  # index of padded position p
    for t, k in enumerate(taps):
        m.index_put_((src[out + t], out), torch.full((n,), float(k), dtype=torch.float64), accumulate=True)
    return m


def gaussian_kernel1d(sigma: float, radius: int, dtype=torch.float64) -> torch.Tensor:
    """Normalised samples of a Gaussian at ``-radius … radius``."""
    t = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-(t**2) / (2.0 * sigma**2))
    return k / k.sum()


def separable_filter(x: torch.Tensor, k1d: torch.Tensor, mode: str) -> torch.Tensor:
    """Apply the same odd-length 1-D kernel along H and W of an N×C×H×W tensor.

    Short kernels run directly; kernels longer than the image use border-folded filter
    matrices (cost independent of the kernel length); the rest one 2-D FFT.
    """
    k = k1d.to(torch.float64)
    n = k.numel()
    h, w = x.shape[-2:]
    if use_cv2(x):
        import cv2

        kn = k.numpy()
        return cv2_planes(x, lambda a, b: cv2.sepFilter2D(a, -1, kn, kn, dst=b, borderType=CV2_BORDER[mode]))
    if n <= 7:
        return _direct_filter2d(_direct_filter2d(x, k[None, :], mode), k[:, None], mode)
    if n > max(h, w):
        taps = tuple(k.tolist())
        mw = _filter_matrix(w, taps, mode).to(x.device, x.dtype)
        mh = _filter_matrix(h, taps, mode).to(x.device, x.dtype)
        return mh.t() @ (x @ mw)
    return _fft_filter2d(x, torch.outer(k, k), mode)


def skimage_gaussian(
    x: torch.Tensor, sigma: float, *, mode: str = "nearest", truncate: float = 4.0
) -> torch.Tensor:
    """scikit-image ``gaussian`` of each channel (SciPy ``gaussian_filter``: radius
    ``int(truncate·σ + 0.5)``) in ``x``'s dtype; σ ≤ 0 returns a copy, as SciPy does."""
    if sigma <= 1e-15:
        return x.clone()
    radius = int(truncate * float(sigma) + 0.5)
    return separable_filter(x, gaussian_kernel1d(float(sigma), radius), mode)


def resample_axis(x: torch.Tensor, dim: int, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A sparse linear resampling along ``dim``: ``out[..., o, ...] = Σ_k w[o,k]·x[..., idx[o,k], ...]``.

    Args:
        x: Any tensor.
        dim: The axis to resample.
        index: ``(out, K)`` long indices into ``x``'s axis.
        weight: ``(out, K)`` weights.
    """
    dim = dim % x.dim()
    used = (weight != 0).any(dim=0)
    index, weight = index[:, used], weight[:, used]
    index = index.to(x.device)
    if index.shape[1] == 1 and bool((weight == 1).all()):
        return x.index_select(dim, index[:, 0])
    weight = weight.to(x.device, x.dtype)
    shape = [1] * x.dim()
    shape[dim] = index.shape[0]
    out = None
    for k in range(index.shape[1]):
        term = x.index_select(dim, index[:, k]) * weight[:, k].view(shape)
        out = term if out is None else out + term
    return out
