"""Photos through a real ComfyUI, loader -> saver: colour profiles converted or kept, EXIF kept
or dropped, AVIF and HEIC in, AVIF out, and a WebP result whose workflow still loads."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
from pathlib import Path

import iccprofiles
import numpy as np
from batch_image_processing.utils.images.color import SRGB_PROFILE
from harness import ComfyClient
from helpers import batch_runs
from PIL import Image, ImageCms
from workflows import loader_node, saver_node

GPS = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
DATE = "2024:05:06 07:08:09"
HEIF = importlib.util.find_spec("pillow_heif") is not None


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132], exif[0x0112] = "Apple", "iPhone 15", DATE, orientation
    exif.get_ifd(0x8769)[0x9003] = DATE
    exif.get_ifd(0x8825).update(GPS)
    return exif


def _noise(h: int, w: int, c: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (h, w, c)).astype(np.uint8)


def _write_inputs(folder: Path) -> dict[str, bytes]:
    """The photos, and the profile each carries."""
    from batch_image_processing.utils.images.encode import write_png16

    p3, adobe, cmyk = iccprofiles.display_p3(), iccprofiles.adobe_rgb(), iccprofiles.cmyk_lut()
    Image.fromarray(_noise(12, 16, 3, 1)).save(folder / "a_p3.jpg", quality=95, icc_profile=p3, exif=_exif(6))
    Image.fromarray(_noise(12, 16, 3, 2)).save(folder / "b_adobe.jpg", quality=95, icc_profile=adobe)
    Image.fromarray(_noise(12, 16, 4, 3), "CMYK").save(folder / "c_cmyk.jpg", quality=95, icc_profile=cmyk)
    with open(folder / "d_p3_16.png", "wb") as fh:
        write_png16(fh, _noise(12, 16, 3, 4).astype(np.uint16) * 257, {}, p3)
    Image.fromarray(_noise(12, 16, 3, 5)).save(folder / "e_p3.avif", quality=90, icc_profile=p3, exif=_exif(1))
    profiles = {"a_p3": p3, "b_adobe": adobe, "c_cmyk": cmyk, "d_p3_16": p3, "e_p3": p3}
    if HEIF:
        import pillow_heif

        heif = pillow_heif.from_pillow(Image.fromarray(_noise(12, 16, 3, 6)))
        heif.save(str(folder / "f_phone.heic"), quality=95)
        profiles["f_phone"] = b""
    return profiles


def _source_pixels(path: Path) -> tuple[np.ndarray, Image.Image]:
    """The file's own pixels (upright, 0..255 float) and the PIL image LittleCMS converts."""
    img = Image.open(path)
    if img.mode == "RGB" and path.suffix == ".png":  # 16-bit RGB PNG: Pillow reduces it; read the 8-bit equivalents
        img.load()
    upright = img.copy()
    if img.getexif().get(0x0112, 1) == 6:
        upright = upright.transpose(Image.Transpose.ROTATE_270)
    return np.asarray(upright.convert("RGB") if upright.mode != "CMYK" else upright).astype(float), upright


def _png16(path: Path) -> np.ndarray:
    from batch_image_processing.utils.images.decode import decode_image

    from_file = decode_image(str(path), "Keep source")  # our exact 16-bit reader, no conversion for sRGB
    return from_file.color.astype(float) / 257.0


def _frontend_webp_metadata(path: Path) -> dict[str, str]:
    """What ComfyUI's frontend reads from a WebP (getWebpMetadata): every IFD0 string 'key:value'."""
    data = path.read_bytes()
    at, found = 12, {}
    while at < len(data):
        size = struct.unpack("<I", data[at + 4:at + 8])[0]
        if data[at:at + 4] == b"EXIF":
            exif = data[at + 8:at + 8 + size]
            exif = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
            little = exif[:2] == b"II"
            fmt = "<" if little else ">"
            ifd = struct.unpack(fmt + "I", exif[4:8])[0]
            for i in range(struct.unpack(fmt + "H", exif[ifd:ifd + 2])[0]):
                _tag, typ, count, value = struct.unpack(fmt + "HHII", exif[ifd + 2 + 12 * i:ifd + 14 + 12 * i])
                if typ == 2:
                    text = exif[value:value + count - 1].decode("utf-8", "replace")
                    key, _, rest = text.partition(":")
                    found[key] = rest
            break
        at += 8 + size + size % 2
    return found


def test_photos_keep_their_colours_and_metadata(client: ComfyClient, input_folder: Path, tmp_path: Path) -> None:
    profiles = _write_inputs(input_folder)
    count = len(profiles)
    conv, keep = tmp_path / "conv", tmp_path / "keep"
    client.queue_prompt({
        "1": loader_node(str(input_folder)),
        "3": saver_node(["1", 0], str(conv / "png"), bit_depth="16"),
        "4": saver_node(["1", 0], str(conv / "jpg"), file_format="jpg", exif_metadata="Keep all"),
        "5": saver_node(["1", 0], str(conv / "webp"), file_format="webp"),
        "6": saver_node(["1", 0], str(conv / "avif"), file_format="avif", exif_metadata="Keep all"),
        "7": saver_node(["1", 0], str(conv / "same"), file_format="same as input", exif_metadata="Drop"),
    }, workflow={"id": "bip19-colour", "nodes": [], "marker": "bip19"})
    client.wait_idle()
    client.queue_prompt({
        "1": loader_node(str(input_folder), color_profile="Keep source", iteration_mode="Reset"),
        "3": saver_node(["1", 0], str(keep), bit_depth="16"),
    })
    client.wait_idle()
    runs = batch_runs(client, str(input_folder))
    assert [r.status for r in runs] == ["success"] * (2 * count), [r.messages for r in runs if r.status != "success"]
    srgb = ImageCms.createProfile("sRGB")
    for stem, profile in profiles.items():
        source = next(input_folder.glob(stem + ".*"))
        pixels, upright = _source_pixels(source)
        if stem == "d_p3_16":
            pixels = _png16(source)
            upright = Image.fromarray((pixels + 0.5).astype(np.uint8))
        converted, kept = conv / "png" / f"{stem}.png", keep / f"{stem}.png"
        # Convert: LittleCMS's own conversion to sRGB within 1/255, tagged sRGB
        ref = pixels[..., :3] if not profile else np.asarray(ImageCms.profileToProfile(
            upright, ImageCms.ImageCmsProfile(io.BytesIO(profile)), srgb, outputMode="RGB")).astype(float)
        assert np.abs(_png16(converted) - ref).max() <= 1.0 + 1e-6, stem
        assert Image.open(converted).info["icc_profile"] == SRGB_PROFILE, stem
        # Keep source: the file's pixel values and its profile (CMYK is always converted: an IMAGE is RGB)
        if stem == "c_cmyk":
            assert Image.open(kept).info["icc_profile"] == SRGB_PROFILE
        else:
            assert np.abs(_png16(kept) - pixels).max() < 1e-6, stem
            assert Image.open(kept).info["icc_profile"] == (profile or SRGB_PROFILE), stem
    # EXIF: kept (with GPS) in JPEG and AVIF, kept without GPS in WebP, dropped; orientation 1
    for path in (conv / "jpg" / "a_p3.jpg", conv / "avif" / "a_p3.avif", conv / "avif" / "e_p3.avif"):
        exif = Image.open(path).getexif()
        assert exif.get(0x0112, 1) == 1 and exif[0x0132] == DATE and exif.get_ifd(0x8825)[2] == GPS[2], path
        assert exif[0x0110] == "iPhone 15" if path.suffix == ".jpg" else True
        assert Image.open(path).info["icc_profile"] == SRGB_PROFILE
    with Image.open(conv / "jpg" / "a_p3.jpg") as rotated:
        assert rotated.size == (12, 16) and rotated.getexif().get_ifd(0x8769)[0xA002] == 12
    webp = conv / "webp" / "a_p3.webp"
    exif = Image.open(webp).getexif()
    assert exif[0x0132] == DATE and not exif.get_ifd(0x8825), "Keep all but location drops GPS only"
    assert b"<tiff:Model>iPhone 15</tiff:Model>" in Image.open(webp).info["xmp"]
    assert json.loads(_frontend_webp_metadata(webp)["workflow"])["marker"] == "bip19", "the workflow still loads"
    dropped = conv / "same" / "a_p3.jpg"
    assert 0x0132 not in Image.open(dropped).getexif() and (conv / "same" / "e_p3.avif").is_file()
    assert Image.open(conv / "same" / "e_p3.avif").format == "AVIF"
