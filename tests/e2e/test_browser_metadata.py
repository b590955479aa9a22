"""ComfyUI's own frontend code reads the workflow back from a WebP and an AVIF result that also
carry the photo's EXIF (camera, date, GPS): both kinds of metadata survive in one EXIF block."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from browser import comfy_page, unavailable_reason
from harness import ComfyServer

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser test skipped: {REASON}")

READ = """async ([b64, kind]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const file = new File([bytes], "result." + kind, {type: "image/" + kind});
    const info = window.comfyAPI.pnginfo;
    const found = kind === "webp" ? await info.getWebpMetadata(file) : await info.getAvifMetadata(file);
    const wf = found.workflow;
    return typeof wf === "string" ? wf : JSON.stringify(wf ?? null);
}"""


def test_webp_and_avif_results_load_their_workflow_in_the_frontend(comfy_server: ComfyServer) -> None:
    from batch_image_processing.utils.images.encode import encode
    from batch_image_processing.utils.images.exif import KEEP_ALL, result_exif
    from PIL import Image

    camera = Image.Exif()
    camera[0x010F], camera[0x0110], camera[0x0132] = "Apple", "iPhone 15", "2024:05:06 07:08:09"
    camera.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 24.0)})
    workflow = '{"nodes": [], "marker": "bip19"}'
    files = {}
    for kind in ("webp", "avif"):
        buf = io.BytesIO()
        encode(buf, np.full((8, 8, 3), 128, np.uint8), kind, 90, {"prompt": '{"1": {}}', "workflow": workflow},
               None, result_exif(camera.tobytes(), KEEP_ALL, 8, 8))
        files[kind] = base64.b64encode(buf.getvalue()).decode()
    with comfy_page(comfy_server.url) as page:
        if not page.evaluate("() => !!window.comfyAPI?.pnginfo?.getWebpMetadata"):
            pytest.skip("this frontend does not expose its metadata readers")
        for kind, data in files.items():
            if kind == "avif" and not page.evaluate("() => !!window.comfyAPI.pnginfo.getAvifMetadata"):
                continue  # older frontends read no AVIF metadata at all
            assert '"marker": "bip19"' in page.evaluate(READ, [data, kind]).replace('":"', '": "'), kind
