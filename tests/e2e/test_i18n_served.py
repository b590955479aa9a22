"""A real ComfyUI serves the pack's translations (GET /i18n), docs pages and search aliases."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import pytest
from harness import PACK_LINK_NAME, REPO_ROOT, ComfyClient, ComfyServer

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import i18n_docs


def fetch(server: ComfyServer, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(server.url + path, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, "", b""


def version_tuple(client: ComfyClient) -> tuple[int, ...]:
    version = client.get("/system_stats")["system"].get("comfyui_version", "0")
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


@pytest.mark.parametrize("lang", ["en", "zh", "ja"])
def test_i18n_serves_every_shipped_translation(client: ComfyClient, lang: str) -> None:
    served = client.get("/i18n")[lang]
    shipped = json.loads((REPO_ROOT / "locales" / lang / "main.json").read_text(encoding="utf-8"))
    for node, texts in shipped["nodeDefs"].items():
        assert served["nodeDefs"][node] == texts
    assert served[i18n_docs.WORDS_NAMESPACE] == shipped[i18n_docs.WORDS_NAMESPACE]


@pytest.mark.parametrize("page", ["BatchImageLoader.md", "BatchImageLoader/zh.md", "BatchImageLoader/ja.md",
                                  "BatchImageSaver.md", "BatchImageSaver/zh.md", "BatchImageSaver/ja.md",
                                  "images/batch-wiring.png"])
def test_docs_pages_are_served_where_the_help_panel_looks(comfy_server: ComfyServer, page: str) -> None:
    # The frontend asks /extensions/<pack folder>/docs/<Node>/<lang>.md, then .../docs/<Node>.md.
    status, content_type, body = fetch(comfy_server, f"/extensions/{PACK_LINK_NAME}/docs/{page}")
    assert status == 200
    assert "text/html" not in content_type  # the help panel refuses HTML (an SPA fallback page)
    assert body == (REPO_ROOT / "web" / "docs" / page).read_bytes()


def test_object_info_lists_the_search_aliases(client: ComfyClient) -> None:
    if version_tuple(client) < (0, 33):
        pytest.skip("ComfyUI before 0.33 does not list SEARCH_ALIASES in /object_info")
    info = client.get("/object_info/BatchImageLoader")["BatchImageLoader"]
    assert "folder" in info["search_aliases"]


def test_extension_files_listed_are_only_the_scripts(client: ComfyClient) -> None:
    # ComfyUI loads every .js under WEB_DIRECTORY as an extension: the docs folder must add none.
    # The extension's modules (imported by batch_image_processing.js) are listed too: they only define.
    ours = sorted(path for path in client.get("/extensions") if f"/{PACK_LINK_NAME}/" in path)
    scripts = sorted(p.name for p in (REPO_ROOT / "web").glob("*.js"))
    assert "batch_image_processing.js" in scripts
    assert ours == [f"/extensions/{PACK_LINK_NAME}/{name}" for name in scripts], ours

