"""ICC profiles the tests write themselves (no licence questions, no system package):
Display P3 and Adobe RGB (1998) as matrix/TRC profiles from their published primaries, a gray
profile (gamma 2.2), and a LUT-based CMYK printer profile (a 9-point grid, naive inks).
"""

from __future__ import annotations

import struct

import numpy as np
from batch_image_processing.utils.images import icc

_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
D65 = (0.3127, 0.3290)


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def colorants(red: tuple[float, float], green: tuple[float, float], blue: tuple[float, float],
              white: tuple[float, float] = D65) -> np.ndarray:
    """RGB -> XYZ(D50) matrix (columns R, G, B) of a space with these primaries and white."""
    prim = np.stack([_xyz(red), _xyz(green), _xyz(blue)], axis=1)
    scale = np.linalg.solve(prim, _xyz(white))
    to_xyz = prim * scale
    src, dst = _BRADFORD @ _xyz(white), _BRADFORD @ np.array(icc.D50)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(dst / src) @ _BRADFORD
    return adapt @ to_xyz


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def srgb_curve() -> bytes:
    params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    return b"para\x00\x00\x00\x00" + struct.pack(">HH", 3, 0) + b"".join(_s15(p) for p in params)


def gamma_curve(gamma: float) -> bytes:
    return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256)) + b"\x00\x00"


def display_p3() -> bytes:
    m = colorants((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
    c = srgb_curve()
    return icc.write_profile("Display P3 (test)", m, (c, c, c))


def adobe_rgb() -> bytes:
    m = colorants((0.640, 0.330), (0.210, 0.710), (0.150, 0.060))
    c = gamma_curve(563 / 256)
    return icc.write_profile("Adobe RGB (1998) compatible (test)", m, (c, c, c))


def _with_header(space: bytes, pcs: bytes, cls: bytes, entries: list[tuple[bytes, bytes]]) -> bytes:
    """Rewrite a profile built by icc.write_profile into another class/space with other tags."""
    entries = [(sig, data + b"\x00" * (-len(data) % 4)) for sig, data in entries]
    offset = 128 + 4 + 12 * len(entries)
    table, body = b"", b""
    for sig, data in entries:
        table += struct.pack(">4sII", sig, offset + len(body), len(data))
        body += data
    header = bytearray(icc.write_profile("x", np.eye(3), (gamma_curve(1),) * 3)[:128])
    header[0:4] = struct.pack(">I", offset + len(body))
    header[12:16], header[16:20], header[20:24] = cls, space, pcs
    return bytes(header) + struct.pack(">I", len(entries)) + table + body


def _desc(text: str) -> bytes:
    raw = text.encode("ascii") + b"\x00"
    return b"desc\x00\x00\x00\x00" + struct.pack(">I", len(raw)) + raw + b"\x00" * 78


def gray_gamma22() -> bytes:
    wtpt = b"XYZ \x00\x00\x00\x00" + b"".join(_s15(v) for v in icc.D50)
    return _with_header(b"GRAY", b"XYZ ", b"mntr", [(b"desc", _desc("Gray gamma 2.2 (test)")),
                                                    (b"wtpt", wtpt), (b"kTRC", gamma_curve(2.2))])


def _lab_of_rgb(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded 0..1 -> CIE Lab (D50), for the CMYK table."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = colorants((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
    xyz = lin @ m.T / np.array(icc.D50)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def cmyk_lut(grid: int = 9) -> bytes:
    """A CMYK output profile whose A2B0 (lut16) maps inks to Lab: paper white, naive inks that
    are a little warm and never quite black (so a naive conversion differs from it)."""
    axis = np.linspace(0.0, 1.0, grid)
    c, m, y, k = np.meshgrid(axis, axis, axis, axis, indexing="ij")
    rgb = np.stack([(1 - c) * (1 - k), (1 - m) * (1 - k) * 0.97, (1 - y) * (1 - k) * 0.9], -1) * 0.92 + 0.05
    lab = _lab_of_rgb(np.clip(rgb, 0, 1)).reshape(-1, 3)
    enc = np.stack([lab[:, 0] * 652.8, (lab[:, 1] + 128) * 256, (lab[:, 2] + 128) * 256], -1)
    clut = np.clip(np.round(enc), 0, 65535).astype(">u2").tobytes()
    ident = np.array([0, 65535], dtype=">u2").tobytes()
    matrix = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (b"mft2\x00\x00\x00\x00" + bytes([4, 3, grid, 0]) + matrix + struct.pack(">HH", 2, 2)
           + ident * 4 + clut + ident * 3)
    wtpt = b"XYZ \x00\x00\x00\x00" + b"".join(_s15(v) for v in icc.D50)
    return _with_header(b"CMYK", b"Lab ", b"prtr", [(b"desc", _desc("Naive CMYK (test)")), (b"wtpt", wtpt),
                                                    (b"A2B0", lut)])
