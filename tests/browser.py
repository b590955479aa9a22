"""Drive ComfyUI's real web page in Debian's headless Chromium with Playwright (no bundled browser)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# Flags for a root, offline, headless run: no sandbox (root), no calls home (closed network).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
# Settings that keep first-run dialogs off the canvas.
QUIET_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Validation.Workflows": False}


def chromium_path() -> str | None:
    found = os.environ.get("CHROMIUM_PATH") or next((p for p in CHROMIUM_CANDIDATES if os.path.exists(p)), None)
    return found or shutil.which("chromium")


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (scripts/test.sh installs it)"
    if chromium_path() is None:
        return "no Chromium found (scripts/test.sh installs Debian's chromium package with apt when it can)"
    return None


@contextmanager
def comfy_page(url: str, width: int = 1400, height: int = 820) -> Iterator[Any]:
    """A page with ComfyUI loaded and its app ready; console errors collected in page.errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.errors = []
            page.on("pageerror", lambda exc: page.errors.append(str(exc)))
            page.goto(url, wait_until="networkidle", timeout=90_000)
            page.wait_for_function("() => window.app && window.app.graph && window.app.canvas", timeout=60_000)
            for close in page.get_by_role("button", name="Close").all():  # announcement banners
                if close.is_visible():
                    try:
                        close.click(timeout=2_000)
                    except Exception:  # gone already: closing one banner can remove another
                        pass
            yield page
        finally:
            browser.close()


def load_workflow(page: Any, workflow: dict) -> None:
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", json.loads(json.dumps(workflow)))
    page.evaluate("() => { window.app.canvas.ds.scale = 0.9; window.app.canvas.ds.offset = [30, 60]; "
                  "window.app.canvas.setDirty(true, true); }")


def set_widget(page: Any, node_type: str, name: str, value: Any) -> None:
    page.evaluate(
        """([type, name, value]) => {
            for (const n of app.graph._nodes.filter((n) => n.comfyClass === type)) {
                const w = n.widgets.find((w) => w.name === name);
                w.value = value; w.callback?.(value);
            }
        }""",
        [node_type, name, value],
    )


def click_node_button(page: Any, node_type: str, label: str) -> None:
    """Click a button widget drawn on the canvas, at its real position on the screen."""
    x, y = page.evaluate(
        """([type, label]) => {
            const n = app.graph._nodes.find((n) => n.comfyClass === type);
            const w = n.widgets.find((w) => w.name === label);
            const y = (w.last_y ?? w.y) + 10;
            const [cx, cy] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + n.size[0] / 2, n.pos[1] + y]);
            const rect = app.canvas.canvas.getBoundingClientRect();
            return [rect.left + cx, rect.top + cy];
        }""",
        [node_type, label],
    )
    page.mouse.click(x, y)


def node_status(page: Any, node_type: str = "BatchImageLoader") -> str:
    return page.evaluate("(type) => app.graph._nodes.find((n) => n.comfyClass === type)?.batchStatusText ?? ''",
                         node_type)


def click_run(page: Any) -> None:
    """Click the page's Run (Queue) button once; its label names the auto-queue mode when one is on."""
    for label in ("Run", "Run (Instant)", "Run (On Change)", "Queue Prompt"):
        button = page.get_by_role("button", name=label, exact=True)
        if button.count() and button.first.is_visible():
            button.first.click()
            return
    raise AssertionError("no Run/Queue button on the page")


def with_sleep(workflow: dict, seconds: float) -> dict:
    """The example with a test node that waits between the loader and the upscale."""
    wf = copy.deepcopy(workflow)
    link_id = wf["last_link_id"] + 1
    image_link = next(link for link in wf["links"] if link[1] == 1 and link[2] == 0)
    sleep_id = wf["last_node_id"] + 1
    wf["nodes"].append({
        "id": sleep_id, "type": "BIPTestSleep", "pos": [430, 260], "size": [270, 60], "flags": {}, "order": 1,
        "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": image_link[0]},
                              {"name": "seconds", "type": "FLOAT", "widget": {"name": "seconds"}, "link": None}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [link_id], "slot_index": 0}],
        "properties": {}, "widgets_values": [seconds],
    })
    target = image_link[3], image_link[4]
    image_link[3], image_link[4] = sleep_id, 0
    wf["links"].append([link_id, sleep_id, 0, target[0], target[1], "IMAGE"])
    for node in wf["nodes"]:
        for slot in node.get("inputs", []):
            if node["id"] == target[0] and slot.get("link") == image_link[0] and slot["name"] == "image":
                slot["link"] = link_id
    wf["last_node_id"], wf["last_link_id"] = sleep_id, link_id
    return wf
