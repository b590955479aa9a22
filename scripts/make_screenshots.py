"""Regenerate the pictures the repo ships: README's screenshot of a finished batch and the
example workflows' thumbnails. Run: .cache/venv/bin/python scripts/make_screenshots.py
With --docs: the node docs' wiring picture and README's help-panel screenshot, taken in
ComfyUI 0.33 with the newest frontend (.cache/comfyui-0.33.0, .cache/frontend-1.58.1)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from browser import QUIET_SETTINGS, click_run, comfy_page, load_workflow, set_widget  # noqa: E402
from demo import make_samples  # noqa: E402
from harness import ComfyClient, ComfyServer  # noqa: E402

EXAMPLES = sorted((REPO_ROOT / "example_workflows").glob("*.json"))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(Path(tmp) / "base").start()
        try:
            client = ComfyClient(server.url)
            client.request("POST", "/settings", QUIET_SETTINGS)
            make_samples(server.input_dir / "batch_demo")
            with comfy_page(server.url, 1280, 640) as page:
                for path in EXAMPLES:
                    load_workflow(page, json.loads(path.read_text()))
                    time.sleep(0.5)
                    shot = Path(tmp) / f"{path.stem}.png"
                    page.screenshot(path=str(shot), clip={"x": 40, "y": 80, "width": 1200, "height": 520})
                    with Image.open(shot) as im:
                        im.convert("RGB").resize((600, 260)).save(path.with_suffix(".jpg"), quality=85)
                load_workflow(page, json.loads(EXAMPLES[-1].read_text()))
                set_widget(page, "BatchImageLoader", "directory", "batch_demo")
                click_run(page)
                client.wait_idle()
                page.wait_for_function(
                    "() => app.graph._nodes.some((n) => (n.batchStatusText ?? '').includes('done'))")
                time.sleep(1.0)
                page.screenshot(path=str(REPO_ROOT / "docs" / "batch-done.png"))
        finally:
            server.stop()


def docs_pictures() -> None:
    cache = REPO_ROOT / ".cache"
    args = ("--front-end-root", str(cache / "frontend-1.58.1" / "static"))
    settings = {**QUIET_SETTINGS, "Comfy.Minimap.Visible": False, "Comfy.Canvas.SelectionToolbox": True}
    with tempfile.TemporaryDirectory() as tmp:
        server = ComfyServer(Path(tmp) / "base", comfyui_dir=cache / "comfyui-0.33.0",
                             python=str(cache / "venv-0.33.0" / "bin" / "python"), extra_args=args).start(300)
        try:
            ComfyClient(server.url).request("POST", "/settings", settings)
            with comfy_page(server.url, 1280, 720) as page:
                load_workflow(page, json.loads((REPO_ROOT / "example_workflows" / "batch_folder_upscale.json")
                                               .read_text()))
                time.sleep(0.5)
                shot = Path(tmp) / "wiring.png"
                page.screenshot(path=str(shot), clip={"x": 40, "y": 90, "width": 1200, "height": 520})
                with Image.open(shot) as im:
                    im.convert("RGB").resize((720, 312)).quantize(128).save(
                        REPO_ROOT / "web" / "docs" / "images" / "batch-wiring.png", optimize=True)
                page.evaluate("""() => {
                    const node = app.graph._nodes.find((n) => n.comfyClass === "BatchImageLoader");
                    app.canvas.deselectAll?.(); app.canvas.selectNode(node); app.canvas.setDirty(true, true);
                }""")
                page.evaluate("""() => document.querySelector("#vue-app").__vue_app__.config.globalProperties
                    .$pinia._s.get("rightSidePanel").openPanel("info")""")  # what the Info button does
                page.get_by_role("heading", name="Minimal wiring").first.wait_for(timeout=20_000)
                time.sleep(1.0)
                page.screenshot(path=str(REPO_ROOT / "docs" / "help-panel.png"))
        finally:
            server.stop()


if __name__ == "__main__":
    docs_pictures() if "--docs" in sys.argv else main()
