"""Colour profiles, EXIF and the optional formats, on real files these tests write."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import iccprofiles
import numpy as np
import pytest
from batch_image_processing.utils.images import color
from batch_image_processing.utils.images.decode import DecodeError, decode_image
from batch_image_processing.utils.images.encode import encode
from batch_image_processing.utils.images.exif import DROP, KEEP_ALL, KEEP_NO_LOCATION, result_exif
from batch_image_processing.utils.images.prefetch import Prefetcher
from PIL import Image, ImageCms

SRGB = ImageCms.createProfile("sRGB")
GPS = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}


def lcms_srgb(img: Image.Image, profile: bytes) -> np.ndarray:
    """LittleCMS's own conversion to sRGB (what Convert must match)."""
    src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    return np.asarray(ImageCms.profileToProfile(img, src, SRGB, outputMode="RGB")).astype(int)


def noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)


def camera_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132], exif[0x0112] = "Canon", "EOS R5", "2024:05:06 07:08:09", orientation
    exif.get_ifd(0x8769).update({0x9003: "2024:05:06 07:08:09", 0xA002: 999, 0x927C: b"maker"})
    exif.get_ifd(0x8825).update(GPS)
    return exif


@pytest.mark.parametrize("make", [iccprofiles.display_p3, iccprofiles.adobe_rgb])
def test_rgb_profiles_convert_like_littlecms_or_stay_untouched(tmp_path: Path, make) -> None:
    profile, pixels = make(), noise((24, 32, 3))
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path, icc_profile=profile)
    ref = lcms_srgb(Image.fromarray(pixels), profile)
    converted = decode_image(str(path))
    assert np.abs(converted.color.astype(int) - ref).max() <= 1
    assert np.abs(pixels.astype(int) - ref).max() > 20, "the profile must matter for this test to mean anything"
    assert converted.icc_profile == color.SRGB_PROFILE
    kept = decode_image(str(path), color.KEEP_SOURCE)
    assert np.array_equal(kept.color, pixels) and kept.icc_profile == profile


def test_cmyk_jpeg_converts_through_its_profile_in_both_modes(tmp_path: Path) -> None:
    profile = iccprofiles.cmyk_lut()
    path = tmp_path / "print.jpg"
    Image.fromarray(noise((16, 16, 4), 1), "CMYK").save(path, icc_profile=profile, quality=95)
    with Image.open(path) as src:
        ref, naive = lcms_srgb(src, profile), np.asarray(src.convert("RGB")).astype(int)
    assert np.abs(naive - ref).max() > 10
    for mode in color.COLOR_PROFILE_MODES:
        got = decode_image(str(path), mode)
        assert np.abs(got.color.astype(int) - ref).max() <= 1 and got.icc_profile == color.SRGB_PROFILE


def test_16_bit_png_is_converted_in_float_and_keeps_its_precision(tmp_path: Path) -> None:
    from batch_image_processing.utils.images.encode import write_png16

    profile = iccprofiles.display_p3()
    eight = noise((16, 16, 3), 2)
    path = tmp_path / "deep.png"
    with open(path, "wb") as fh:
        write_png16(fh, eight.astype(np.uint16) * 257, {}, profile)
    got = decode_image(str(path))
    assert got.color.dtype == np.uint16 and got.scale == 65535.0 and got.icc_profile == color.SRGB_PROFILE
    assert np.abs(got.color / 257.0 - lcms_srgb(Image.fromarray(eight), profile)).max() <= 1.0
    assert (got.color % 257 != 0).any(), "16-bit precision kept, not rounded to 8 bits"
    kept = decode_image(str(path), color.KEEP_SOURCE)
    assert np.array_equal(kept.color, eight.astype(np.uint16) * 257) and kept.icc_profile == profile


def test_no_profile_is_srgb_and_a_broken_one_warns_naming_the_file(tmp_path: Path, caplog) -> None:
    pixels = noise((8, 8, 3), 3)
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    assert decode_image(str(tmp_path / "plain.png")).icc_profile == color.SRGB_PROFILE
    Image.fromarray(pixels).save(tmp_path / "broken.png", icc_profile=b"\x00" * 200)
    with caplog.at_level(logging.WARNING):
        got = decode_image(str(tmp_path / "broken.png"))
    assert np.array_equal(got.color, pixels) and got.icc_profile == color.SRGB_PROFILE
    assert "broken.png" in caplog.text and "sRGB" in caplog.text


def test_gray_kept_in_its_space_is_tagged_with_an_equivalent_rgb_profile(tmp_path: Path) -> None:
    gray = iccprofiles.gray_gamma22()
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))
    Image.fromarray(ramp, "L").save(tmp_path / "g.png", icc_profile=gray)
    kept = decode_image(str(tmp_path / "g.png"), color.KEEP_SOURCE)
    assert np.array_equal(kept.color[..., 0], ramp)
    rgb = np.repeat(ramp[..., None], 3, axis=2)
    as_rgb = lcms_srgb(Image.fromarray(rgb), kept.icc_profile)  # the tag shows the gray as the gray profile does
    converted = decode_image(str(tmp_path / "g.png")).color
    assert np.abs(as_rgb - converted.astype(int)).max() <= 1


def test_one_transform_per_profile(tmp_path: Path, monkeypatch) -> None:
    built: list[str] = []
    real = ImageCms.buildTransform
    monkeypatch.setattr(ImageCms, "buildTransform", lambda *a, **k: built.append("x") or real(*a, **k))
    monkeypatch.setattr(color, "_transforms", {})
    profile = iccprofiles.adobe_rgb()
    for i in range(3):
        Image.fromarray(noise((4, 4, 3), i)).save(tmp_path / f"{i}.png", icc_profile=profile)
        decode_image(str(tmp_path / f"{i}.png"))
    assert built == ["x"]


def test_a_prefetched_image_of_the_other_colour_mode_is_not_served(tmp_path: Path) -> None:
    Image.fromarray(noise((4, 4, 3))).save(tmp_path / "a.png", icc_profile=iccprofiles.display_p3())
    pre = Prefetcher()
    pre.schedule("k", 0, str(tmp_path / "a.png"), None, None, color.CONVERT_TO_SRGB)
    assert pre.take("k", 0, str(tmp_path / "a.png"), color.KEEP_SOURCE) is None


@pytest.mark.parametrize("fmt", ["jpg", "webp", "png", "png16", "tiff", "tiff16", "avif"])
def test_exif_and_profile_are_readable_back_from_every_format(tmp_path: Path, fmt: str) -> None:
    source = camera_exif(orientation=6).tobytes()
    pixels = noise((6, 10, 3), 4)
    if fmt.endswith("16"):
        pixels = pixels.astype(np.uint16) * 257
    workflow = {"prompt": '{"1": {}}', "workflow": '{"nodes": []}'}
    for mode in (KEEP_ALL, KEEP_NO_LOCATION, DROP):
        buf = io.BytesIO()
        encode(buf, pixels, fmt.replace("16", ""), 95, workflow, iccprofiles.adobe_rgb(),
               result_exif(source, mode, 10, 6))
        buf.seek(0)
        with Image.open(buf) as out:
            assert out.info.get("icc_profile") == iccprofiles.adobe_rgb()
            exif = out.getexif()
            if fmt.startswith("png"):
                assert out.text["workflow"] == '{"nodes": []}'
            if mode == DROP:
                assert 0x0132 not in exif and not exif.get_ifd(0x8825)
                continue
            sub = exif.get_ifd(0x8769)
            # Pillow stores an AVIF's orientation in the container (irot/imir): 1 is "no tag" there
            assert exif.get(0x0112, 1 if fmt == "avif" else None) == 1 and exif[0x0132] == "2024:05:06 07:08:09"
            assert sub[0x9003] == "2024:05:06 07:08:09" and (sub[0xA002], sub[0xA003]) == (10, 6)
            assert 0x927C not in sub, "maker notes are dropped"
            assert bool(exif.get_ifd(0x8825)) == (mode == KEEP_ALL)
            if mode == KEEP_ALL:
                assert exif.get_ifd(0x8825)[2] == GPS[2]
            if fmt in ("webp", "avif"):  # the workflow holds Make/Model; the camera moved to XMP
                assert exif[0x010F] == 'workflow:{"nodes": []}' and exif[0x0110] == 'prompt:{"1": {}}'
                assert b"<tiff:Model>EOS R5</tiff:Model>" in out.info["xmp"]
            else:
                assert exif[0x0110] == "EOS R5"


def test_heic_reads_with_pillow_heif(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pixels = np.full((16, 16, 3), (200, 40, 90), np.uint8)
    pillow_heif.from_pillow(Image.fromarray(pixels)).save(str(tmp_path / "phone.heic"), quality=95)
    got = decode_image(str(tmp_path / "phone.heic"))
    assert got.color.shape == (16, 16, 3) and np.abs(got.color.astype(int) - pixels).max() <= 8


def test_without_the_plugin_the_message_names_the_package_and_the_pip_command(tmp_path: Path) -> None:
    (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    (tmp_path / "web.jxl").write_bytes(b"\xff\x0a" + b"\x00" * 64)
    code = (
        "import sys; sys.modules['pillow_heif'] = None; sys.modules['pillow_jxl'] = None\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "from packload import load_pack; load_pack()\n"
        "from batch_image_processing.utils.images.decode import decode_image, DecodeError\n"
        f"for name in ('phone.heic', 'web.jxl'):\n"
        f"    try: decode_image({str(tmp_path)!r} + '/' + name)\n"
        "    except DecodeError as exc: print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stderr
    assert "phone.heic" in lines[0] and f'"{sys.executable}" -m pip install pillow-heif' in lines[0]
    assert "web.jxl" in lines[1] and "-m pip install pillow-jxl-plugin" in lines[1]
    with pytest.raises(DecodeError):  # and in this process, a HEIC that is not one is still an error
        decode_image(str(tmp_path / "web.jxl"))


def test_gray_pixels_with_an_rgb_profile_are_converted_without_a_warning(tmp_path: Path, caplog) -> None:
    ramp = np.tile(np.arange(0, 256, 32, dtype=np.uint8), (2, 1))
    Image.fromarray(ramp, "L").save(tmp_path / "g.jpg", quality=100, icc_profile=iccprofiles.adobe_rgb())
    with caplog.at_level(logging.WARNING):
        got = decode_image(str(tmp_path / "g.jpg"))
        kept = decode_image(str(tmp_path / "g.jpg"), color.KEEP_SOURCE)
    assert not caplog.text and got.color.shape[2] == 3 and kept.icc_profile == iccprofiles.adobe_rgb()
    with Image.open(tmp_path / "g.jpg") as src:
        assert np.abs(got.color.astype(int) - lcms_srgb(src.convert("RGB"), iccprofiles.adobe_rgb())).max() <= 1


def test_a_comfyui_results_own_workflow_is_not_taken_for_camera_metadata(tmp_path: Path) -> None:
    buf = io.BytesIO()
    encode(buf, noise((4, 4, 3)), "webp", 100, {"prompt": '{"1": {}}', "workflow": '{"nodes": []}'})
    (tmp_path / "result.webp").write_bytes(buf.getvalue())
    source = decode_image(str(tmp_path / "result.webp")).exif
    exif = result_exif(source, KEEP_ALL, 4, 4)
    assert exif is None or (0x010F not in exif and 0x0110 not in exif)


def test_exif_too_long_for_a_jpeg_is_left_out_not_an_error(tmp_path: Path, caplog) -> None:
    big = camera_exif()
    big[0x010E] = "x" * 70_000
    buf = io.BytesIO()
    with caplog.at_level(logging.WARNING):
        encode(buf, noise((4, 4, 3)), "jpg", 90, {}, None, result_exif(big.tobytes(), KEEP_ALL, 4, 4))
    assert Image.open(io.BytesIO(buf.getvalue())).size == (4, 4) and "too long" in caplog.text


def test_a_big_image_converted_in_bands_matches_littlecms_everywhere(tmp_path: Path) -> None:
    profile, pixels = iccprofiles.display_p3(), noise((700, 40, 3), 7)  # 700 rows: several bands
    Image.fromarray(pixels).save(tmp_path / "tall.png", icc_profile=profile)
    got = decode_image(str(tmp_path / "tall.png")).color.astype(int)
    assert got.shape == (700, 40, 3)
    assert np.abs(got - lcms_srgb(Image.fromarray(pixels), profile)).max() <= 1


def test_16_bit_with_a_lut_profile_keeps_pixels_and_profile(tmp_path: Path, caplog) -> None:
    from batch_image_processing.utils.images import icc
    from batch_image_processing.utils.images.encode import write_png16

    p3 = icc.tags(iccprofiles.display_p3())
    lut_rgb = iccprofiles._with_header(b"RGB ", b"XYZ ", b"mntr", [*p3.items(), (b"A2B0", icc.tags(
        iccprofiles.cmyk_lut())[b"A2B0"])])
    deep = noise((8, 8, 3), 9).astype(np.uint16) * 257 + 3
    with open(tmp_path / "lut16.png", "wb") as fh:
        write_png16(fh, deep, {}, lut_rgb)
    with caplog.at_level(logging.INFO):
        got = decode_image(str(tmp_path / "lut16.png"))
        decode_image(str(tmp_path / "lut16.png"))
    assert np.array_equal(got.color, deep) and got.icc_profile == lut_rgb
    assert caplog.text.count("LUT-based") == 1, "said once per profile, not per image"


def test_all_images_lists_the_new_formats_and_same_as_input_keeps_avif() -> None:
    from batch_image_processing.utils.file_listing import FileMatcher
    from batch_image_processing.utils.saving.naming import output_format

    matcher = FileMatcher("All Images", "")
    assert all(matcher.matches(name) for name in ("a.avif", "b.HEIC", "c.heif", "d.jxl"))
    assert output_format("same as input", ".avif") == ("avif", ".avif")
    assert output_format("same as input", ".heic") == ("png", ".png")
    assert output_format("avif", ".jpg") == ("avif", ".avif")
