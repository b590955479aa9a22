"""The demo behind scripts/demo.sh (see there). Everything lives in .cache/demo/ of the checkout."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))
from harness import ComfyClient, ComfyServer  # noqa: E402
from workflow_api import set_widget, to_api  # noqa: E402

WORKFLOW = REPO_ROOT / "example_workflows" / "batch_folder_upscale.json"
DEMO_DIR = REPO_ROOT / ".cache" / "demo"


def make_samples(folder: Path) -> list[Path]:
    """A few small colourful pictures, in two formats and a subfolder (natural-order names)."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "night").mkdir(parents=True)
    y, x = np.mgrid[0:96, 0:128].astype(np.float32)
    made = []
    for i, (name, hue) in enumerate([("sunset_1.png", 0.0), ("sunset_2.jpg", 0.3), ("sunset_10.png", 0.6),
                                     ("night/moon_1.png", 0.8), ("night/moon_2.jpg", 0.95)]):
        r = 127 + 127 * np.sin(x / 18 + hue * 6)
        g = 127 + 127 * np.sin(y / 14 + i)
        b = 127 + 127 * np.cos((x + y) / 25 + hue * 3)
        rgb = np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)
        path = folder / name
        Image.fromarray(rgb).save(path, **({"quality": 92} if name.endswith(".jpg") else {}))
        made.append(path)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stop", action="store_true", help="stop the server when the batch is done")
    parser.add_argument("--port", type=int, default=None, help="port for ComfyUI (default: a free one)")
    args = parser.parse_args()

    server = ComfyServer(DEMO_DIR, port=args.port)
    samples = make_samples(server.input_dir / "batch_demo")
    out_root = server.output_dir / "batch_demo_upscaled"
    shutil.rmtree(out_root, ignore_errors=True)
    print(f"[demo] {len(samples)} sample images in {server.input_dir / 'batch_demo'}")
    print(f"[demo] starting ComfyUI from {server.comfyui_dir} (log: {server.log_path}) ...")
    server.start()
    try:
        client = ComfyClient(server.url)
        info = client.get("/object_info")
        workflow = json.loads(WORKFLOW.read_text())
        set_widget(workflow, "BatchImageLoader", "directory", "batch_demo", info)
        set_widget(workflow, "BatchImageLoader", "iteration_mode", "Reset", info)
        started = time.monotonic()
        client.queue_prompt(to_api(workflow, info), workflow=workflow)
        print(f"[demo] queued {WORKFLOW.name} once; the pack queues every next image itself ...")
        client.wait_idle(timeout=600)
        results = sorted(p for p in out_root.rglob("*") if p.is_file())
        print(f"[demo] batch done in {time.monotonic() - started:.1f} s: {len(results)} results in {out_root}")
        for path in results:
            with Image.open(path) as im:
                print(f"         {path.relative_to(out_root)}  ({im.size[0]}x{im.size[1]})")
        if len(results) != len(samples):
            print(f"[demo] expected {len(samples)} results, see the log: {server.log_path}")
            return 1
        if args.stop:
            return 0
        print(f"[demo] ComfyUI is running at {server.url} - open it, load {WORKFLOW.name} from the")
        print("[demo] templates (Workflow > Browse Templates) and press Queue. Ctrl-C stops the server.")
        while server.process is not None and server.process.poll() is None:
            time.sleep(1)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
