"""Read and write matrix/TRC ICC profiles (the kind every RGB camera, phone and monitor profile is).

LittleCMS (Pillow's ImageCms) converts 8-bit pixels only; a 16-bit image is converted here in
float from its profile's colorants and tone curves, the same maths LittleCMS does for these
profiles. The writer builds small v2 profiles (used to tag a gray image kept in its own space).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

_HEADER = 128
D50 = (0.9642, 1.0, 0.8249)


def _s15(raw: bytes) -> float:
    return struct.unpack(">i", raw)[0] / 65536.0


def tags(profile: bytes) -> dict[bytes, bytes]:
    """Tag signature -> tag data; raises ValueError for what is not an ICC profile."""
    if len(profile) < _HEADER + 4 or profile[36:40] != b"acsp":
        raise ValueError("not an ICC profile (no 'acsp' signature)")
    count = struct.unpack(">I", profile[_HEADER:_HEADER + 4])[0]
    found: dict[bytes, bytes] = {}
    for i in range(min(count, 256)):
        at = _HEADER + 4 + 12 * i
        sig, offset, size = struct.unpack(">4sII", profile[at:at + 12])
        if offset + size > len(profile):
            raise ValueError(f"tag {sig!r} lies outside the profile")
        found[sig] = profile[offset:offset + size]
    return found


def color_space(profile: bytes) -> str:
    """The profile's data colour space: 'RGB', 'GRAY', 'CMYK', ..."""
    return profile[16:20].decode("latin-1").strip()


def _xyz(data: bytes) -> tuple[float, float, float]:
    if data[:4] != b"XYZ " or len(data) < 20:
        raise ValueError("bad XYZ tag")
    return _s15(data[8:12]), _s15(data[12:16]), _s15(data[16:20])


def _curve(data: bytes, x: np.ndarray) -> np.ndarray:
    """Apply a curv or para tone curve to x (0..1)."""
    kind = data[:4]
    if kind == b"curv":
        n = struct.unpack(">I", data[8:12])[0]
        if n == 0:
            return x
        if n == 1:
            return np.power(x, struct.unpack(">H", data[12:14])[0] / 256.0)
        table = np.frombuffer(data[12:12 + 2 * n], dtype=">u2").astype(np.float64) / 65535.0
        return np.interp(x, np.linspace(0.0, 1.0, n), table)
    if kind == b"para":
        ftype = struct.unpack(">H", data[8:10])[0]
        nparams = (1, 3, 4, 5, 7)[ftype] if ftype < 5 else 0
        if not nparams:
            raise ValueError(f"unknown parametric curve type {ftype}")
        p = [_s15(data[12 + 4 * i:16 + 4 * i]) for i in range(nparams)] + [0.0] * (7 - nparams)
        g, a, b, c, d, e, f = p
        if ftype == 0:
            return np.power(x, g)
        if ftype in (1, 2):
            lin = a * x + b
            out = np.power(np.maximum(lin, 0.0), g)
            return np.where(x >= -b / a, out + (c if ftype == 2 else 0.0), c if ftype == 2 else 0.0)
        powered = np.power(np.maximum(a * x + b, 0.0), g)
        return np.where(x >= d, powered + (e if ftype == 4 else 0.0), c * x + (f if ftype == 4 else 0.0))
    raise ValueError(f"unknown tone curve type {kind!r}")


@dataclass(frozen=True)
class MatrixTRC:
    """A matrix/TRC profile: linear = curve(value), XYZ(D50) = matrix @ linear."""

    matrix: np.ndarray  # 3x3, columns are the red, green, blue colorants
    curves: tuple[bytes, ...]  # one tone curve tag per channel (1 for gray)

    def linear_lut(self, channel: int, size: int = 65536) -> np.ndarray:
        """The channel's tone curve sampled at size points, as float32."""
        x = np.linspace(0.0, 1.0, size)
        return np.clip(_curve(self.curves[channel], x), 0.0, None).astype(np.float32)


def matrix_trc(profile: bytes) -> MatrixTRC | None:
    """The matrix and curves of an RGB or gray matrix/TRC profile; None for LUT-based ones."""
    found = tags(profile)
    space = color_space(profile)
    if space == "GRAY" and b"kTRC" in found:
        return MatrixTRC(np.eye(3), (found[b"kTRC"],))
    need = (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")
    if space != "RGB" or any(t not in found for t in need) or b"A2B0" in found:
        return None
    matrix = np.array([_xyz(found[t]) for t in need[:3]], dtype=np.float64).T
    return MatrixTRC(matrix, tuple(found[t] for t in need[3:]))


def encode_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light 0..1 -> sRGB-encoded 0..1 (IEC 61966-2-1), in place on float32 arrays."""
    np.clip(linear, 0.0, 1.0, out=linear)
    low = linear <= 0.0031308
    out = np.power(linear, 1.0 / 2.4, dtype=np.float32)
    out *= 1.055
    out -= 0.055
    out[low] = linear[low] * 12.92
    return out


def _tag(sig: bytes, data: bytes) -> tuple[bytes, bytes]:
    return sig, data + b"\x00" * (-len(data) % 4)


def _xyz_tag(xyz: tuple[float, float, float]) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + struct.pack(">3i", *(round(v * 65536) for v in xyz))


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii", "replace") + b"\x00"
    return (b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_text)) + ascii_text
            + b"\x00" * 8 + b"\x00" * 3 + b"\x00" * 67)


def write_profile(description: str, colorants: np.ndarray, curves: tuple[bytes, bytes, bytes]) -> bytes:
    """A v2.1 RGB display profile: colorants (3x3, columns R, G, B in D50 XYZ) and tone curve tags."""
    entries = [
        _tag(b"desc", _desc_tag(description)),
        _tag(b"cprt", b"text\x00\x00\x00\x00No copyright, use freely\x00"),
        _tag(b"wtpt", _xyz_tag(D50)),
        _tag(b"rXYZ", _xyz_tag(tuple(colorants[:, 0]))),
        _tag(b"gXYZ", _xyz_tag(tuple(colorants[:, 1]))),
        _tag(b"bXYZ", _xyz_tag(tuple(colorants[:, 2]))),
        _tag(b"rTRC", curves[0]), _tag(b"gTRC", curves[1]), _tag(b"bTRC", curves[2]),
    ]
    offset = _HEADER + 4 + 12 * len(entries)
    table, body = b"", b""
    for sig, data in entries:
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = struct.pack(">I4sI4s4s4s12s4s4sI4s4s8sI12s4s16s28s", size, b"lcms", 0x02100000, b"mntr",
                         b"RGB ", b"XYZ ", b"\x00" * 12, b"acsp", b"APPL", 0, b"\x00" * 4, b"\x00" * 4,
                         b"\x00" * 8, 0, struct.pack(">3i", *(round(v * 65536) for v in D50)), b"\x00" * 4,
                         b"\x00" * 16, b"\x00" * 28)
    return header + struct.pack(">I", len(entries)) + table + body
