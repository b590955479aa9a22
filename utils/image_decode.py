"""Decode one image file into ComfyUI's IMAGE and MASK tensors, exactly as the user sees it.

Pure: a path in, tensors out. EXIF orientation is applied, 8- and 16-bit sources keep their
precision (16-bit is scaled by 65535, where core LoadImage clips it), transparency becomes a
MASK (1 - alpha), and the compact integer pixels are moved to the target device before they
are converted to float, so a GPU run moves a quarter of the bytes.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

MAX_PIXELS_ENV = "BATCH_IMAGE_MAX_PIXELS"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types that Pillow reduces to 8 bits when they are 16-bit (RGB, RGBA).
_PNG_16BIT_COLOUR_TYPES = (2, 6)


class DecodeError(ValueError):
    """An image could not be decoded; the message names the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"Cannot read image '{path}': {reason}")
        self.path = path
        self.reason = reason


@dataclass
class DecodedImage:
    """Pixels still in their compact source type: color HxWxC (C is 1 or 3), alpha HxW or None."""

    color: np.ndarray
    alpha: np.ndarray | None
    scale: float  # value of full intensity: 255, 65535 or 1.0 (float sources)

    @property
    def height(self) -> int:
        return int(self.color.shape[0])

    @property
    def width(self) -> int:
        return int(self.color.shape[1])


def max_pixels() -> int | None:
    """Pixel limit: PIL's decompression-bomb limit, raised (or lifted with 0) by the env var."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels.") from None
        return None if value <= 0 else value
    return Image.MAX_IMAGE_PIXELS


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxW[xC] array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, -1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, 1)
    return arr


def _as_array(img: Image.Image) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(img)


def _split(img: Image.Image) -> DecodedImage:
    """Pixels of a loaded PIL frame as (color, alpha, scale), converting only where needed."""
    mode = img.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
    elif mode == "1":
        img = img.convert("L")
        mode = "L"
    elif mode in ("La", "RGBa"):
        img = img.convert("LA" if mode == "La" else "RGBA")
        mode = img.mode
    elif mode not in ("RGB", "RGBA", "L", "LA", "I", "F") and not mode.startswith("I;16"):
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
        mode = "RGB"

    arr = _as_array(img)
    if mode == "RGB":
        return DecodedImage(arr, None, 255.0)
    if mode == "RGBA":
        return DecodedImage(arr[..., :3], arr[..., 3], 255.0)
    if mode == "L":
        return DecodedImage(arr[..., None], None, 255.0)
    if mode == "LA":
        return DecodedImage(arr[..., :1], arr[..., 1], 255.0)
    if mode.startswith("I;16"):
        return DecodedImage(arr.astype(np.uint16, copy=False)[..., None], None, 65535.0)
    if mode == "I":  # 32-bit integer; in practice 16-bit PNG/TIFF data
        return DecodedImage(np.clip(arr, 0, 65535).astype(np.uint16)[..., None], None, 65535.0)
    # mode == "F": float data, shown as 0..1
    return DecodedImage(np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)[..., None], None, 1.0)


def _png_is_16bit_colour(head: bytes) -> bool:
    """True for a 16-bit RGB/RGBA PNG, which Pillow would reduce to 8 bits."""
    return (
        len(head) >= 26
        and head.startswith(_PNG_SIGNATURE)
        and head[12:16] == b"IHDR"
        and head[24] == 16
        and head[25] in _PNG_16BIT_COLOUR_TYPES
    )


def _torchvision_io():
    """torchvision's libpng/libjpeg decoders (deprecated upstream, so optional: None when gone)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from torchvision.io import ImageReadMode, decode_jpeg, decode_png
        except ImportError:
            return None
    return ImageReadMode, decode_jpeg, decode_png


def _read_tensor(path: str) -> torch.Tensor:
    with open(path, "rb") as fh:
        return torch.frombuffer(bytearray(fh.read()), dtype=torch.uint8)


def _hwc_numpy(chw: torch.Tensor) -> np.ndarray:
    """CHW tensor from torchvision -> HxWxC numpy array (no copy when the memory is already HWC)."""
    hwc = chw.permute(1, 2, 0)
    if chw.dtype == torch.uint16:  # numpy has uint16, torch cannot hand it over: go through int16
        return hwc.view(torch.int16).numpy().view(np.uint16)
    return hwc.numpy()


def _libpng_or_libjpeg(path: str, codec: str) -> np.ndarray | None:
    """HxWxC pixels from torchvision's "png" or "jpeg" decoder; None when it is missing or the
    file is unusual (truncated, ...), so that Pillow decodes it or names the problem."""
    tv = _torchvision_io()
    if tv is None:
        return None
    mode, decode_jpeg, decode_png = tv
    decode = decode_png if codec == "png" else decode_jpeg
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _hwc_numpy(decode(_read_tensor(path), mode=mode.UNCHANGED))
        except RuntimeError:
            return None


def _decode_png16(path: str) -> DecodedImage | None:
    """16-bit RGB(A) PNG through libpng, which keeps all 16 bits (Pillow reduces them to 8)."""
    hwc = _libpng_or_libjpeg(path, "png")
    if hwc is None:
        return None
    return DecodedImage(hwc[..., :3], hwc[..., 3] if hwc.shape[2] == 4 else None, 65535.0)


def _decode_jpeg(path: str) -> DecodedImage | None:
    """RGB/gray JPEG through libjpeg-turbo straight into a tensor: same pixels as Pillow, without
    Pillow's extra full-size copy out of its image memory."""
    hwc = _libpng_or_libjpeg(path, "jpeg")
    return DecodedImage(hwc, None, 255.0) if hwc is not None and hwc.shape[2] in (1, 3) else None


def _fast_decode(path: str, img: Image.Image) -> DecodedImage | None:
    """A decoder that beats Pillow for this file (JPEG) or keeps more bits (16-bit RGB PNG)."""
    if img.format == "JPEG" and img.mode in ("RGB", "L"):
        return _decode_jpeg(path)
    if img.format == "PNG":
        with open(path, "rb") as fh:
            if _png_is_16bit_colour(fh.read(26)):
                return _decode_png16(path)
    return None


def decode_image(path: str) -> DecodedImage:
    """Decode the first frame of path; raises DecodeError (naming the file) on any failure."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DecodeError(path, "the file no longer exists (moved or deleted during the batch)") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot be accessed ({exc.strerror or exc})") from None
    if size == 0:
        raise DecodeError(path, "the file is empty (0 bytes)")
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if limit is not None and width * height > limit:
                    raise DecodeError(
                        path,
                        f"{width}x{height} = {width * height:,} pixels is above the limit of {limit:,} "
                        f"(decompression-bomb guard); set {MAX_PIXELS_ENV} to a larger number (0 = no limit) "
                        "to load it",
                    )
                orientation = int(img.getexif().get(0x0112, 1) or 1)
                fast = _fast_decode(path, img)
                if fast is not None:
                    return _oriented(fast, orientation)
                img.seek(0)  # multi-frame files (GIF, WebP, MPO, TIFF): the first frame
                img.load()
                decoded = _split(img)
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError(path, "not an image file Pillow can read (wrong extension or corrupt header)") from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(path, f"{exc} Set {MAX_PIXELS_ENV} to a larger number (0 = no limit) to load it") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(path, f"corrupt or truncated image data ({exc})") from None
    except MemoryError:
        raise DecodeError(path, "not enough memory to decode it") from None
    return _oriented(decoded, orientation)


def _oriented(decoded: DecodedImage, orientation: int) -> DecodedImage:
    if orientation in (1, 0) or orientation > 8:
        return decoded
    color = _orient(decoded.color, orientation)
    alpha = _orient(decoded.alpha, orientation) if decoded.alpha is not None else None
    return DecodedImage(color, alpha, decoded.scale)


_NUMPY_FLOATS = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}


def _compact_tensor(arr: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view of a host array in its compact dtype (uint8, uint16 or float32)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only arrays: never written, only converted
        if arr.dtype == np.uint16:
            return torch.from_numpy(arr.view(np.int16)).view(torch.uint16)
        return torch.from_numpy(arr)


def _host_empty(shape: tuple[int, ...], dtype: torch.dtype, zero: bool = False) -> torch.Tensor | None:
    """Host tensor allocated by numpy: its allocator asks Linux for huge pages, which makes
    filling a fresh full-size float image about 3x faster than torch's allocator; np.zeros
    gets pre-zeroed pages for free. None for dtypes numpy lacks (bfloat16)."""
    np_dtype = _NUMPY_FLOATS.get(dtype)
    if np_dtype is None:
        return None
    return torch.from_numpy((np.zeros if zero else np.empty)(shape, np_dtype))


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
