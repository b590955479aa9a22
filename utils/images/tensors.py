"""Decoded pixels into ComfyUI's IMAGE and MASK tensors, on its intermediate device and dtype.

The compact integer pixels are moved to the target device before they are converted to float,
so a GPU run moves a quarter of the bytes; on the CPU, full-size results are allocated by numpy.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .decode import DecodedImage
from .host_buffers import host_buffers
from .run_batch import write_slice

_NUMPY_FLOATS = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}


def _compact_tensor(arr: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view of a host array in its compact dtype (uint8, uint16 or float32)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only arrays: never written, only converted
        if arr.dtype == np.uint16:
            return torch.from_numpy(arr.view(np.int16)).view(torch.uint16)
        return torch.from_numpy(arr)


def _host_empty(shape: tuple[int, ...], dtype: torch.dtype, zero: bool = False) -> torch.Tensor | None:
    """Host tensor in numpy memory: the memory of a released image of this size when there is one
    (host_buffers), else numpy's, which asks Linux for huge pages (filling a fresh full-size float
    image about 3x faster than torch's allocator); np.zeros gets pre-zeroed pages for free. None
    for dtypes numpy lacks (bfloat16)."""
    np_dtype = _NUMPY_FLOATS.get(dtype)
    if np_dtype is None:
        return None
    return torch.from_numpy(np.zeros(shape, np_dtype) if zero else host_buffers.empty(shape, np_dtype))


def _convert(
    compact: torch.Tensor, scale: float, device: torch.device, dtype: torch.dtype, shape: tuple[int, ...]
) -> torch.Tensor:
    """Compact pixels -> float tensor of shape on device: moved first (a quarter of the bytes of
    float32), then converted and scaled there in one write of the full-size result. A gray
    source (one channel) is broadcast to RGB by the same write."""
    source = compact if device.type == "cpu" else compact.to(device)
    out = _host_empty(shape, dtype) if device.type == "cpu" else None
    if out is None:
        out = torch.empty(shape, dtype=dtype, device=device)
    out.copy_(source.expand(shape))
    return out.div_(scale) if scale != 1.0 else out


def to_tensors(
    decoded: DecodedImage,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE [1,H,W,3] and MASK [1,H,W] (1 - alpha; zeros of the image's size without alpha)."""
    device = torch.device(device)
    color = decoded.color
    if color.strides[-1] < 0 or color.strides[0] < 0 or color.strides[1] < 0:
        color = np.ascontiguousarray(color)  # flipped by EXIF orientation: torch needs positive strides
    shape = (1, decoded.height, decoded.width)
    image = _convert(_compact_tensor(color), decoded.scale, device, dtype, (*shape[1:], 3)).unsqueeze(0)
    if decoded.alpha is None:
        mask = _host_empty(shape, dtype, zero=True) if device.type == "cpu" else None
        if mask is None:
            mask = torch.zeros(shape, dtype=dtype, device=device)
        return image, mask
    alpha = np.ascontiguousarray(decoded.alpha)
    mask = _convert(_compact_tensor(alpha), decoded.scale, device, dtype, shape[1:])
    return image, mask.neg_().add_(1.0).unsqueeze(0)


def to_batch_tensors(
    images: list[DecodedImage],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE [k,H,W,3] and MASK [k,H,W] of k images of one size (images_per_run): each image is
    converted straight into its slice, so the batch is written once, never stacked afterwards."""
    device = torch.device(device)
    shape = (len(images), images[0].height, images[0].width)
    if device.type == "cpu" and dtype == torch.float32:
        host_image, host_mask = host_buffers.empty((*shape, 3), np.float32), np.zeros(shape, np.float32)
        for i, decoded in enumerate(images):  # numpy, not torch: see run_batch.write_slice
            write_slice(host_image[i], host_mask[i], decoded)
        return torch.from_numpy(host_image), torch.from_numpy(host_mask)
    image = _host_empty((*shape, 3), dtype) if device.type == "cpu" else None
    if image is None:
        image = torch.empty((*shape, 3), dtype=dtype, device=device)
    mask = _host_empty(shape, dtype, zero=True) if device.type == "cpu" else None
    if mask is None:
        mask = torch.zeros(shape, dtype=dtype, device=device)
    for i, decoded in enumerate(images):
        color = decoded.color
        if color.strides[-1] < 0 or color.strides[0] < 0 or color.strides[1] < 0:
            color = np.ascontiguousarray(color)
        _fill(image[i], _compact_tensor(color), decoded.scale)
        if decoded.alpha is not None:
            _fill(mask[i], _compact_tensor(np.ascontiguousarray(decoded.alpha)), decoded.scale).neg_().add_(1.0)
    return image, mask


def _fill(out: torch.Tensor, compact: torch.Tensor, scale: float) -> torch.Tensor:
    """Write compact pixels into a slice of a batch tensor (moved to its device first), converted
    and scaled in one pass over the slice (the same values as a copy, then a division)."""
    source = compact if out.device.type == "cpu" else compact.to(out.device)
    if scale == 1.0:
        return out.copy_(source.expand(out.shape))
    return torch.div(source.expand(out.shape), scale, out=out)
