"""Press Queue ONCE in ComfyUI's real page (headless Chromium): the whole folder runs; Stop stops it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import imagefiles as img
import pytest
from browser import (
    QUIET_SETTINGS,
    click_node_button,
    click_run,
    comfy_page,
    load_workflow,
    node_status,
    set_widget,
    unavailable_reason,
    with_sleep,
)
from harness import REPO_ROOT, ComfyClient, ComfyServer

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser test skipped: {REASON}")
EXAMPLE = REPO_ROOT / "example_workflows" / "batch_folder_upscale.json"


@pytest.fixture
def quiet_frontend(client: ComfyClient) -> None:
    status, _ = client.request("POST", "/settings", QUIET_SETTINGS)
    assert status == 200


def outputs(server: ComfyServer) -> list[str]:
    root = server.output_dir / "batch_demo_upscaled"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png")) if root.exists() else []


def test_run_button_once_processes_the_folder_and_stop_button_stops(
    comfy_server: ComfyServer, client: ComfyClient, quiet_frontend: None, input_folder: Path, tmp_path: Path
) -> None:
    (input_folder / "sub").mkdir()
    for i in range(4):
        img.write_png(input_folder / f"photo_{i + 1}.png", 96, 64, seed=i)
    img.write_png(input_folder / "sub" / "photo_10.png", 96, 64, seed=9)
    workflow = json.loads(EXAMPLE.read_text())
    with comfy_page(comfy_server.url) as page:
        load_workflow(page, workflow)
        set_widget(page, "BatchImageLoader", "directory", str(input_folder))
        click_run(page)  # Queue, once
        client.wait_for(lambda: len(outputs(comfy_server)) == 5, timeout=120, what="5 results")
        client.wait_idle()
        page.wait_for_function("() => app.graph._nodes.some((n) => (n.batchStatusText ?? '').includes('done'))",
                               timeout=30_000)
        assert node_status(page).startswith("5 / 5 - ")
        assert outputs(comfy_server) == ["photo_1_x2.png", "photo_2_x2.png", "photo_3_x2.png", "photo_4_x2.png",
                                         "sub/photo_10_x2.png"]
        shots = Path(os.environ.get("BIP_SCREENSHOT_DIR", str(tmp_path)))
        page.screenshot(path=str(shots / "batch-done.png"))
        assert page.errors == [] or all("reading 'id'" in e for e in page.errors), page.errors

        # Second run: a slow workflow, Stop batch clicked on the node while the first image runs.
        load_workflow(page, with_sleep(workflow, 2.0))
        set_widget(page, "BatchImageLoader", "directory", str(input_folder))
        set_widget(page, "BatchImageLoader", "iteration_mode", "Reset")
        click_run(page)
        page.wait_for_function("() => app.graph._nodes.some((n) => (n.batchStatusText ?? '').startsWith('0 / 5'))",
                               timeout=60_000)
        click_node_button(page, "BatchImageLoader", "Stop batch")
        client.wait_idle(timeout=60)
        page.wait_for_function("() => app.graph._nodes.some((n) => (n.batchStatusText ?? '').includes('stopped'))",
                               timeout=30_000)
        assert node_status(page).startswith("1 / 5 - stopped"), node_status(page)
        assert len(outputs(comfy_server)) == 6, "exactly one more image ran after Stop"

        # Third run: four images per run: the line names the run's first file and how many more,
        # and after Stop it says the run finishes first.
        set_widget(page, "BatchImageLoader", "images_per_run", 4)
        click_run(page)
        page.wait_for_function("() => app.graph._nodes.some((n) => (n.batchStatusText ?? '')"
                               ".startsWith('0 / 5 - photo_1.png and 3 more'))", timeout=60_000)
        click_node_button(page, "BatchImageLoader", "Stop batch")
        page.wait_for_function("() => app.graph._nodes.some((n) => (n.batchStatusText ?? '')"
                               ".includes('stopping after this run'))", timeout=30_000)
        client.wait_idle(timeout=60)
        page.wait_for_function("() => app.graph._nodes.some((n) => (n.batchStatusText ?? '').includes('stopped'))",
                               timeout=30_000)
        assert node_status(page).startswith("4 / 5 - stopped"), node_status(page)


def test_instant_auto_queue_never_runs_an_image_twice(
    comfy_server: ComfyServer, client: ComfyClient, quiet_frontend: None, input_folder: Path
) -> None:
    for i in range(3):
        img.write_png(input_folder / f"auto_{i}.png", 64, 48, seed=i)
    workflow = json.loads(EXAMPLE.read_text())
    with comfy_page(comfy_server.url) as page:
        load_workflow(page, workflow)
        set_widget(page, "BatchImageLoader", "directory", str(input_folder))
        set_widget(page, "BatchImageLoader", "iteration_mode", "Reset")
        set_widget(page, "BatchImageSaver", "output_directory", "auto_queue")
        mode = page.evaluate("""() => {
            const store = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia
                ._s.get('queueSettingsStore');
            if (store) store.mode = 'instant';
            return store?.mode;
        }""")
        assert mode == "instant", "the frontend's queue settings store was not found"
        click_run(page)
        client.wait_idle(timeout=60, quiet_for=3.0)
        saved = sorted(p.name for p in (comfy_server.output_dir / "auto_queue").rglob("*.png"))
        assert saved == ["auto_0_x2.png", "auto_1_x2.png", "auto_2_x2.png"]
        assert page.evaluate("""() => document.querySelector('#vue-app').__vue_app__.config.globalProperties
            .$pinia._s.get('queueSettingsStore').mode""") == "disabled"


def test_a_second_run_press_during_a_batch_shows_why_it_does_nothing(
    comfy_server: ComfyServer, client: ComfyClient, quiet_frontend: None, input_folder: Path
) -> None:
    for i in range(3):
        img.write_png(input_folder / f"twice_{i}.png", 64, 48, seed=i)
    workflow = with_sleep(json.loads(EXAMPLE.read_text()), 1.0)
    with comfy_page(comfy_server.url) as page:
        load_workflow(page, workflow)
        set_widget(page, "BatchImageLoader", "directory", str(input_folder))
        set_widget(page, "BatchImageSaver", "output_directory", "pressed_twice")
        click_run(page)
        page.wait_for_function("() => (app.graph._nodes.find((n) => n.comfyClass === 'BatchImageLoader')"
                               "?.batchStatusText ?? '').includes('twice_0')", timeout=60_000)
        click_run(page)  # again, while the batch runs
        # The toast: PrimeVue's on older frontends, another component on newer ones: find it by its words.
        page.get_by_text("Batch already running").first.wait_for(timeout=30_000)
        assert page.get_by_text("is running").count() > 0
        page.wait_for_function("() => (app.graph._nodes.find((n) => n.comfyClass === 'BatchImageLoader')"
                               "?.batchStatusText ?? '').includes('Not started')", timeout=10_000)
        client.wait_idle(timeout=60)
        saved = sorted(p.name for p in (comfy_server.output_dir / "pressed_twice").rglob("*.png"))
        assert saved == ["twice_0_x2.png", "twice_1_x2.png", "twice_2_x2.png"]


def test_two_tabs_opened_from_one_template_are_two_batches(
    comfy_server: ComfyServer, client: ComfyClient, quiet_frontend: None, input_folder: Path
) -> None:
    """The frontend keeps a template's workflow id in every tab opened from it (checked here):
    the pack's extension gives the tab being queued its own id, so each tab runs every image."""
    for i in range(3):
        img.write_png(input_folder / f"tab_{i}.png", 64, 48, seed=i)
    workflow = with_sleep(json.loads(EXAMPLE.read_text()), 0.5)
    with comfy_page(comfy_server.url) as page:
        ids = []
        for tab in ("A", "B"):
            page.evaluate("async ([wf, name]) => { await app.loadGraphData(wf, true, true, name); }",
                          [workflow, f"template tab {tab}"])
            set_widget(page, "BatchImageLoader", "directory", str(input_folder))
            set_widget(page, "BatchImageSaver", "output_directory", f"tab_{tab}")
            # What the frontend does after an edit by hand: the tab keeps the edited state.
            page.evaluate("() => app.extensionManager.workflow.activeWorkflow.changeTracker.checkState()")
            ids.append(page.evaluate("() => app.graph.id"))
        assert ids[0] == ids[1] == workflow["id"], "the frontend gave the two tabs different ids by itself"
        click_run(page)  # tab B, while tab A is open with the same id
        client.wait_for(lambda: any((comfy_server.output_dir / "tab_B").rglob("*.png")), what="tab B's first image")
        page.evaluate("() => app.extensionManager.command.execute('Workspace.PreviousOpenedWorkflow')")
        page.wait_for_function("() => app.extensionManager.workflow.activeWorkflow.path.includes('tab A')",
                               timeout=10_000)
        click_run(page)  # tab A, while tab B's batch runs on the same folder
        client.wait_idle(timeout=60)
    for tab in ("A", "B"):
        saved = sorted(p.name for p in (comfy_server.output_dir / f"tab_{tab}").rglob("*.png"))
        assert saved == ["tab_0_x2.png", "tab_1_x2.png", "tab_2_x2.png"], f"tab {tab}"
