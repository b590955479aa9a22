"""EXIF of a result: the input's date, camera, lens, copyright (and GPS when wanted), made true
for the result: Orientation 1 (the loader already turned the pixels upright), the size tags of
the result, no thumbnail and no maker notes (their offsets break when moved), and beside it the
workflow in ComfyUI's own WebP/AVIF convention (prompt in Model 0x0110, workflow in Make 0x010f).
Where the workflow takes Make and Model, the camera's Make and Model go into XMP (tiff:Make,
tiff:Model), where photo libraries read them too.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from PIL import Image

KEEP_ALL, KEEP_NO_LOCATION, DROP = "Keep all", "Keep all but location", "Drop"
EXIF_MODES = (KEEP_NO_LOCATION, KEEP_ALL, DROP)

ORIENTATION, MAKE, MODEL = 0x0112, 0x010F, 0x0110
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
# IFD0 tags that describe the photo (not how a TIFF stores it): description, make, model,
# resolution, software, date, artist, copyright, Windows XP title/comment/author/keywords/subject.
_IFD0_KEPT = (0x010E, MAKE, MODEL, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x8298,
              0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F)
# Exif sub-IFD tags dropped: maker notes (offsets into the old file), the interoperability
# pointer (an offset), and the size tags (written anew for the result).
_EXIF_DROPPED = (0x927C, 0xA005, 0xA002, 0xA003)
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
# "prompt:{...}", "workflow:{...}": a ComfyUI result's own workflow in its IFD0, not the photo's
_COMFY_ENTRY = re.compile(r"^\w+:\s*[\[{]")


def source_exif(img: Image.Image) -> bytes | None:
    """The photo's EXIF as the loader decoded it (a TIFF's own layout tags left out); None without."""
    try:
        found = img.getexif()
        if not found and not found.get_ifd(EXIF_IFD):
            return None
        clean = Image.Exif()
        for tag in (*_IFD0_KEPT, ORIENTATION):
            value = found.get(tag)
            if value is not None and not (isinstance(value, str) and _COMFY_ENTRY.match(value)):
                clean[tag] = value
        for ifd in (EXIF_IFD, GPS_IFD):
            values = found.get_ifd(ifd)
            if values:
                clean.get_ifd(ifd).update(values)
        data = clean.tobytes()
    except (ValueError, TypeError, KeyError, OSError, SyntaxError):  # malformed EXIF: the image still loads
        return None
    return data if len(clean) or clean.get_ifd(EXIF_IFD) else None


def result_exif(source: bytes | None, mode: str, width: int, height: int) -> Image.Exif | None:
    """The EXIF a result of size width x height carries under mode (None: none)."""
    if not source or mode == DROP:
        return None
    src = Image.Exif()
    src.load(source)
    out = Image.Exif()
    for tag in _IFD0_KEPT:
        if tag in src:
            out[tag] = src[tag]
    out[ORIENTATION] = 1
    sub = {tag: value for tag, value in src.get_ifd(EXIF_IFD).items() if tag not in _EXIF_DROPPED}
    sub[PIXEL_X], sub[PIXEL_Y] = int(width), int(height)
    out.get_ifd(EXIF_IFD).update(sub)
    if mode == KEEP_ALL and src.get_ifd(GPS_IFD):
        out.get_ifd(GPS_IFD).update(src.get_ifd(GPS_IFD))
    return out


def with_workflow(exif: Image.Exif | None, metadata: dict[str, str]) -> tuple[Image.Exif | None, bytes | None]:
    """exif plus ComfyUI's workflow entries (WebP and AVIF), and the XMP packet holding the
    camera's Make and Model when the workflow took their tags; (exif, None) without workflow."""
    if not metadata:
        return exif, None
    out = exif if exif is not None else Image.Exif()
    camera = {name: out.get(tag) for name, tag in (("Make", MAKE), ("Model", MODEL)) if out.get(tag)}
    tag = MAKE
    for key, value in metadata.items():
        if key == "prompt":
            out[MODEL] = f"prompt:{value}"
        else:
            out[tag] = f"{key}:{value}"
            tag -= 1
    return out, camera_xmp(camera) if camera else None


def camera_xmp(camera: dict[str, str]) -> bytes:
    """A minimal XMP packet with tiff:Make / tiff:Model."""
    fields = "".join(f"<tiff:{k}>{escape(str(v).strip(chr(0)))}</tiff:{k}>" for k, v in camera.items())
    return ('<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/">{fields}</rdf:Description>'
            '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>').encode()
