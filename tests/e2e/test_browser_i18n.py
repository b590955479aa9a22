"""In ComfyUI 0.33's page (its own frontend and the newest one): the help panel shows the node's docs
page, the Chinese locale translates the node and its buttons, and the node library finds "folder"."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import QUIET_SETTINGS, comfy_page, unavailable_reason
from harness import REPO_ROOT, ComfyClient, ComfyServer

CACHE = REPO_ROOT / ".cache"
NEW_COMFYUI = Path(os.environ.get("BIP_COMFYUI_NEW_DIR", CACHE / "comfyui-0.33.0"))
NEW_PYTHON = Path(os.environ.get("BIP_COMFYUI_NEW_PYTHON", CACHE / "venv-0.33.0" / "bin" / "python"))
NEWEST_FRONTEND = Path(os.environ.get("BIP_FRONTEND_NEWEST", CACHE / "frontend-1.58.1" / "static"))
FRONTENDS = {"bundled": None, "newest": NEWEST_FRONTEND}

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser test skipped: {REASON}")


def locale(lang: str) -> dict[str, Any]:
    return json.loads((REPO_ROOT / "locales" / lang / "main.json").read_text(encoding="utf-8"))


def first_section_heading(lang: str, node_class: str = "BatchImageLoader") -> str:
    page = f"{node_class}.md" if lang == "en" else f"{node_class}/{lang}.md"
    text = (REPO_ROOT / "web" / "docs" / page).read_text(encoding="utf-8")
    return re.search(r"^## (.+)$", text, re.M).group(1)  # only in the docs page, not in the description


@pytest.fixture(scope="module", params=list(FRONTENDS))
def new_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    if not (NEW_COMFYUI / "main.py").is_file() or not NEW_PYTHON.is_file():
        pytest.skip(f"ComfyUI 0.33 is not provisioned ({NEW_COMFYUI}, {NEW_PYTHON})")
    frontend = FRONTENDS[request.param]
    if frontend is not None and not (frontend / "index.html").is_file():
        pytest.skip(f"the newest frontend is not unpacked at {frontend}")
    args = ("--front-end-root", str(frontend)) if frontend else ()
    server = ComfyServer(tmp_path_factory.mktemp(f"comfy-new-{request.param}"), comfyui_dir=NEW_COMFYUI,
                         python=str(NEW_PYTHON), extra_args=args)
    try:
        yield server.start(timeout=300)
    finally:
        server.stop()


def open_page_in(server: ComfyServer, lang: str) -> Any:
    settings = {**QUIET_SETTINGS, "Comfy.Locale": lang, "Comfy.Canvas.SelectionToolbox": True}
    status, _ = ComfyClient(server.url).request("POST", "/settings", settings)
    assert status == 200
    return comfy_page(server.url)


def add_selected_loader(page: Any, node_class: str = "BatchImageLoader") -> None:
    page.evaluate("""(nodeClass) => {
        app.graph.clear();
        const node = LiteGraph.createNode(nodeClass);
        node.pos = [420, 160];
        app.graph.add(node);
    }""", node_class)
    select_the_node(page)


def select_the_node(page: Any) -> None:
    page.evaluate("""() => {
        app.canvas.deselectAll?.();
        app.canvas.selectNode(app.graph._nodes[0]);
        app.canvas.setDirty(true, true);
    }""")


def open_help(page: Any, heading: str) -> None:
    """The selected node's Info button (selection toolbox) opens the help panel with its docs page.

    On a loaded machine the toolbox has once not appeared within 20 s of the selection (CI, three
    passes side by side on two cores): the node is then selected again, with the pointer moved
    over the canvas, for up to a minute, before the test fails."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    button = page.get_by_test_id("info-button").first
    deadline = time.monotonic() + 60
    while True:
        try:
            button.wait_for(state="visible", timeout=10_000)
            break
        except PlaywrightTimeoutError:
            if time.monotonic() > deadline:
                raise
            page.mouse.move(200, 500)
            page.mouse.move(700, 450)
            select_the_node(page)
    # An error toast of the page (seen once on a loaded CI machine, over the toolbox) must not
    # hide the button; a toast about this pack is a failure of its own.
    for overlay in page.get_by_test_id("error-overlay").all():
        if overlay.is_visible():
            text = overlay.inner_text()
            assert "batch" not in text.lower(), f"the page shows an error about the pack: {text}"
    button.dispatch_event("click")
    page.get_by_role("heading", name=heading).first.wait_for(state="visible", timeout=30_000)


def search_node_library(page: Any, query: str, expected_title: str) -> None:
    page.evaluate('() => app.extensionManager.command.execute("Workspace.ToggleSidebarTab.node-library")')
    box = page.locator(".side-bar-panel input, .sidebar-content-container input").first
    box.wait_for(state="visible", timeout=20_000)
    box.fill(query)
    panel = page.locator(".side-bar-panel, .sidebar-content-container").first
    panel.get_by_text(expected_title, exact=True).first.wait_for(state="visible", timeout=20_000)


def loader_texts(page: Any) -> dict[str, str]:
    return page.evaluate("""() => {
        const node = app.graph._nodes.find((n) => n.comfyClass === "BatchImageLoader");
        const stop = node.widgets.find((w) => w.name === "Stop batch");
        return { title: node.title, stop: stop.label ?? stop.name, status: node.batchStatusText ?? "" };
    }""")


def screenshots(tmp_path: Path) -> Path:
    return Path(os.environ.get("BIP_SCREENSHOT_DIR", str(tmp_path)))


def test_help_panel_shows_the_docs_page_and_search_finds_folder(
    new_server: ComfyServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    en = locale("en")
    with open_page_in(new_server, "en") as page:
        add_selected_loader(page)
        assert loader_texts(page)["title"] == en["nodeDefs"]["BatchImageLoader"]["display_name"]
        open_help(page, first_section_heading("en"))
        page.screenshot(path=str(screenshots(tmp_path) / f"help-panel-{request.node.callspec.id}.png"))
        search_node_library(page, "folder", en["nodeDefs"]["BatchImageLoader"]["display_name"])
        assert page.errors == [], page.errors


def test_chinese_page_translates_the_node_its_buttons_and_its_help(
    new_server: ComfyServer, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    zh = locale("zh")
    words = zh["batchImageProcessing"]
    with open_page_in(new_server, "zh") as page:
        add_selected_loader(page)
        title = zh["nodeDefs"]["BatchImageLoader"]["display_name"]
        page.wait_for_function("(title) => app.graph._nodes.some((n) => n.title === title)", arg=title,
                               timeout=20_000)
        assert loader_texts(page) == {"title": title, "stop": words["stopButton"], "status": words["idle"]}
        open_help(page, first_section_heading("zh"))
        page.screenshot(path=str(screenshots(tmp_path) / f"help-panel-zh-{request.node.callspec.id}.png"))
        search_node_library(page, "folder", title)
        assert page.errors == [], page.errors


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_companion_loader_and_text_saver_show_their_help_and_are_found_as_mask_and_caption(
    new_server: ComfyServer, lang: str
) -> None:
    names = {n: locale(lang)["nodeDefs"][n]["display_name"] for n in ("BatchCompanionLoader", "BatchTextSaver")}
    with open_page_in(new_server, lang) as page:
        add_selected_loader(page, "BatchCompanionLoader")
        pattern = page.evaluate("""() => app.graph._nodes[0].widgets.find((w) => w.name === "pattern").value""")
        assert pattern == "{name}.*"
        open_help(page, first_section_heading(lang, "BatchCompanionLoader"))
        search_node_library(page, "mask", names["BatchCompanionLoader"])
        panel = page.locator(".side-bar-panel, .sidebar-content-container").first
        page.locator(".side-bar-panel input, .sidebar-content-container input").first.fill("caption")
        panel.get_by_text(names["BatchTextSaver"], exact=True).first.wait_for(state="visible", timeout=20_000)
        assert page.errors == [], page.errors
