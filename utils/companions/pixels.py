"""A companion image as IMAGE and MASK, and the empty stand-ins of an image's size.

Companions are data (masks, depth and pose maps), so their pixel values are kept as stored: no
colour profile conversion. The MASK of a companion with transparency is 1 - alpha, as core
LoadImage makes it; of one without, its brightness (a grayscale mask file as it is, white = 1;
an RGB file through Rec. 601 luma), since mask folders are mostly black-and-white images.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from ..images.color import KEEP_SOURCE
from ..images.decode import decode_image
from ..images.tensors import to_tensors
from ..log import printable
from .finding import CompanionError

_LUMA = (0.299, 0.587, 0.114)
_TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def companion_tensors(path: str, device: Any = "cpu", dtype: torch.dtype = torch.float32
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """IMAGE [1,H,W,3] and MASK [1,H,W] of the companion image at path (DecodeError when unreadable)."""
    decoded = decode_image(path, KEEP_SOURCE)
    image, mask = to_tensors(decoded, device, dtype)
    if decoded.alpha is not None:
        return image, mask
    if decoded.color.shape[-1] == 1:  # gray: the stored values exactly
        return image, image[..., 0].clone()
    weights = torch.tensor(_LUMA, dtype=image.dtype, device=image.device)
    return image, (image * weights).sum(-1).clamp_(0.0, 1.0)


def image_size(path: str) -> tuple[int, int]:
    """(width, height) of the image at path as the loader shows it (EXIF rotation applied), from its header."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if int(img.getexif().get(0x0112, 1) or 1) in _TRANSPOSED:
                width, height = height, width
    except (OSError, ValueError, SyntaxError) as exc:
        raise CompanionError(f"cannot read the size of '{printable(path)}': {exc}") from None
    return width, height


def empty_tensors(size: tuple[int, int], device: Any = "cpu", dtype: torch.dtype = torch.float32
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """A black IMAGE and an all-zero MASK of size (width, height): the stand-ins of a missing companion."""
    width, height = size
    return (torch.zeros((1, height, width, 3), dtype=dtype, device=device),
            torch.zeros((1, height, width), dtype=dtype, device=device))
