"""A loader inside a subgraph (frontends with subgraphs, 1.2x to 1.58): its status line follows its
batch, the subgraph node on the root graph shows the progress, and Stop / Reset reach the batch the
server knows by the loader's execution id ("4:1", "7:4:1"). Two copies of one subgraph are two
batches."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import imagefiles as img
import pytest
from browser import (
    QUIET_SETTINGS,
    click_run,
    comfy_page,
    load_workflow,
    set_widget,
    unavailable_reason,
    with_sleep,
)
from harness import REPO_ROOT, ComfyClient, ComfyServer

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser test skipped: {REASON}")
EXAMPLE = REPO_ROOT / "example_workflows" / "batch_folder_upscale.json"
STATUS = "/batch_image_processing/status"

# Every node of the page's graph with its execution id, subgraphs included: [[id, node], ...].
PLACED = """(() => {
    const placed = [];
    const walk = (graph, prefix) => {
        for (const node of graph._nodes ?? graph.nodes) {
            const id = prefix + node.id;
            placed.push([id, node]);
            if (node.isSubgraphNode?.() && node.subgraph) walk(node.subgraph, id + ':');
        }
    };
    walk(app.rootGraph ?? app.graph, '');
    return placed;
})()"""
NODE_AT = f"(id) => new Map({PLACED}).get(id)"


@pytest.fixture
def quiet_frontend(client: ComfyClient) -> None:
    status, _ = client.request("POST", "/settings", QUIET_SETTINGS)
    assert status == 200


def skip_without_subgraphs(page: Any) -> None:
    if not page.evaluate("() => typeof (app.rootGraph ?? app.graph)?.convertToSubgraph === 'function'"):
        pytest.skip("this frontend has no subgraphs")


def convert_to_subgraph(page: Any, node_ids: list[int]) -> str:
    """Select nodes of the graph on the canvas and run the frontend's "Convert to Subgraph": the new
    subgraph node's id."""
    return page.evaluate("""async (ids) => {
        const graph = app.canvas.graph;
        const before = new Set(graph.nodes.map((node) => node.id));
        app.canvas.deselectAll?.();
        app.canvas.selectItems(ids.map((id) => graph.getNodeById(id)));
        await app.extensionManager.command.execute('Comfy.Graph.ConvertToSubgraph');
        return String(graph.nodes.find((node) => !before.has(node.id) && node.isSubgraphNode?.()).id);
    }""", node_ids)


def loader_ids(page: Any) -> list[str]:
    return sorted(page.evaluate(f"() => {PLACED}.filter(([, n]) => n.comfyClass === 'BatchImageLoader')"
                                ".map(([id]) => id)"))


def status_at(page: Any, exec_id: str) -> str:
    return page.evaluate(f"(id) => ({NODE_AT})(id)?.batchStatusText ?? ''", exec_id)


def line_under(page: Any, exec_id: str) -> str:
    return page.evaluate(f"(id) => ({NODE_AT})(id)?.batchProgressText ?? ''", exec_id)


def wait_status(page: Any, exec_id: str, check: str, timeout: float = 60) -> None:
    """Wait until the status of the node at exec_id passes check, a JS expression on `text`."""
    page.wait_for_function(f"(id) => {{ const text = ({NODE_AT})(id)?.batchStatusText ?? ''; return {check}; }}",
                           arg=exec_id, timeout=timeout * 1000)


def open_graph_of(page: Any, exec_id: str) -> None:
    """Show the graph that holds exec_id on the canvas, entered from the root as a user would."""
    page.evaluate("""(path) => {
        const root = app.rootGraph ?? app.graph;
        if (app.canvas.graph !== root) app.canvas.setGraph(root);
        let graph = root;
        for (const id of path) {
            const node = graph.getNodeById(id);
            app.canvas.openSubgraph(node.subgraph, node);
            graph = node.subgraph;
        }
    }""", exec_id.split(":")[:-1])


def click_button(page: Any, exec_id: str, label: str) -> None:
    """Click a button of the node at exec_id (its graph open on the canvas) where it is drawn."""
    x, y = page.evaluate("""async ([localId, label]) => {
        const node = app.canvas.graph.getNodeById(localId);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [60 - node.pos[0], 80 - node.pos[1]];
        app.canvas.setDirty(true, true);
        app.canvas.draw(true, true);
        await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
        const widget = node.widgets.find((w) => w.name === label);
        const [cx, cy] = app.canvas.ds.convertOffsetToCanvas(
            [node.pos[0] + node.size[0] / 2, node.pos[1] + (widget.last_y ?? widget.y) + 10]);
        const rect = app.canvas.canvas.getBoundingClientRect();
        return [rect.left + cx, rect.top + cy];
    }""", [exec_id.split(":")[-1], label])
    page.mouse.click(x, y)


def saved(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.png")) if folder.exists() else []


def server_batches(client: ComfyClient, workflow_id: str) -> dict[str, str]:
    """The batches the server knows of one workflow: execution id -> folder."""
    return {row["node_id"]: row["directory"] for row in client.get(STATUS)["batches"]
            if row["workflow_id"] == workflow_id}


@pytest.mark.parametrize("shape", ["alone", "with_neighbours", "nested"])
def test_a_loader_in_a_subgraph_shows_its_batch_and_its_buttons_reach_it(
    shape: str, comfy_server: ComfyServer, client: ComfyClient, quiet_frontend: None, input_folder: Path
) -> None:
    for i in range(3):
        img.write_png(input_folder / f"sg_{i}.png", 64, 48, seed=i)
    out = comfy_server.output_dir / f"subgraph_{shape}"
    workflow = with_sleep(json.loads(EXAMPLE.read_text()), 1.5)
    workflow["id"] = str(uuid.uuid4())  # a batch of its own: the server is shared with other tests
    sleep_id = workflow["last_node_id"]
    with comfy_page(comfy_server.url) as page:
        skip_without_subgraphs(page)
        load_workflow(page, workflow)
        set_widget(page, "BatchImageLoader", "directory", str(input_folder))
        set_widget(page, "BatchImageSaver", "output_directory", out.name)
        outer = convert_to_subgraph(page, [1, sleep_id] if shape == "with_neighbours" else [1])
        if shape == "nested":
            outer = convert_to_subgraph(page, [int(outer)])
        [loader] = loader_ids(page)
        assert loader.count(":") == (2 if shape == "nested" else 1) and loader.startswith(f"{outer}:"), loader
        open_graph_of(page, loader)

        # A button pressed before any batch: the server knows no batch of this id, and the node says so.
        status, body = client.request("POST", "/batch_image_processing/stop",
                                      {"node_id": loader, "workflow_id": workflow["id"]})
        assert status == 404 and loader in body["error"], (status, body)
        click_button(page, loader, "Stop batch")
        wait_status(page, loader, f"text.includes('No batch known for node {loader}')", timeout=10)

        click_run(page)  # Run once: the whole folder
        wait_status(page, loader, "text.includes('done')")
        assert status_at(page, loader).startswith("3 / 3 - "), status_at(page, loader)
        page.wait_for_function(f"() => ({NODE_AT})('{outer}')?.batchProgressText === 'Batch: 3 / 3 - done'",
                               timeout=10_000)
        assert len(saved(out)) == 3
        client.wait_idle(timeout=60)  # a press right at the end would count as the auto-queue's

        click_run(page)  # a finished batch starts over; Stop pressed inside while its first image runs
        page.wait_for_function(f"() => ({NODE_AT})('{loader}')?.batchStatusText?.startsWith('0 / 3') "
                               f"&& ({NODE_AT})('{outer}')?.batchProgressText?.startsWith('Batch: 0 / 3')",
                               timeout=60_000)  # the line inside and the one on the root graph, at once
        click_button(page, loader, "Stop batch")
        client.wait_idle(timeout=60)
        wait_status(page, loader, "text.includes('stopped')", timeout=30)
        assert status_at(page, loader).startswith("1 / 3 - stopped"), status_at(page, loader)
        assert line_under(page, outer) == "Batch: 1 / 3 - stopped"
        assert len(saved(out)) == 4, "exactly one more image ran after Stop"

        click_button(page, loader, "Reset")  # the next Run starts at start_index, not at image 2
        wait_status(page, loader, "text.startsWith('Position forgotten')", timeout=10)
        assert loader not in server_batches(client, workflow["id"])
        click_run(page)
        wait_status(page, loader, "text.includes('done')")
        client.wait_idle(timeout=60)
        assert len(saved(out)) == 7, saved(out)
        assert page.errors == [] or all("reading 'id'" in e for e in page.errors), page.errors


def two_copies(directories: tuple[str, str], outputs: tuple[str, str]) -> dict:
    """A root graph with two copies (nodes 5 and 6) of one subgraph: a loader and a saver whose
    directory and output_directory come from the subgraph's inputs, set on each copy."""
    example = {node["type"]: node for node in json.loads(EXAMPLE.read_text())["nodes"]}
    loader = {**example["BatchImageLoader"], "id": 1, "pos": [200, 80]}
    loader["inputs"] = [{**slot, "link": 10 if slot["name"] == "directory" else None} for slot in loader["inputs"]]
    loader["outputs"] = [{**slot, "links": {"IMAGE": [12], "FILENAME": [13]}.get(slot["name"], [])}
                         for slot in loader["outputs"]]
    saver = {**example["BatchImageSaver"], "id": 2, "pos": [640, 80]}
    links = {"images": 12, "output_directory": 11, "filename": 13}
    saver["inputs"] = [{**slot, "link": links.get(slot["name"])} for slot in saver["inputs"]]
    saver["outputs"] = [{**slot, "links": []} for slot in saver["outputs"]]
    definition_id = str(uuid.uuid4())
    definition = {
        "id": definition_id, "version": 1, "revision": 0, "config": {}, "name": "Folder batch",
        "state": {"lastGroupId": 0, "lastNodeId": 2, "lastLinkId": 13, "lastRerouteId": 0},
        "inputNode": {"id": -10, "bounding": [0, 100, 120, 80]},
        "outputNode": {"id": -20, "bounding": [1100, 100, 120, 40]},
        "inputs": [{"id": str(uuid.uuid4()), "name": name, "type": "STRING", "linkIds": [link],
                    "pos": {"0": 100, "1": 120 + 20 * i}}
                   for i, (name, link) in enumerate([("directory", 10), ("output_directory", 11)])],
        "outputs": [], "widgets": [], "nodes": [loader, saver], "groups": [], "extra": {},
        "links": [
            {"id": 10, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "STRING"},
            {"id": 11, "origin_id": -10, "origin_slot": 1, "target_id": 2, "target_slot": 1, "type": "STRING"},
            {"id": 12, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"},
            {"id": 13, "origin_id": 1, "origin_slot": 2, "target_id": 2, "target_slot": 2, "type": "STRING"},
        ],
    }
    copies = [{"id": node_id, "type": definition_id, "pos": [60 + 420 * i, 120], "size": [360, 120], "flags": {},
               "order": i, "mode": 0, "inputs": [], "outputs": [], "properties": {},
               "widgets_values": [directories[i], outputs[i]]} for i, node_id in enumerate((5, 6))]
    return {"id": str(uuid.uuid4()), "revision": 0, "last_node_id": 6, "last_link_id": 13, "nodes": copies,
            "links": [], "groups": [], "definitions": {"subgraphs": [definition]}, "config": {}, "extra": {},
            "version": 0.4}


def test_two_copies_of_one_subgraph_are_two_batches(
    comfy_server: ComfyServer, client: ComfyClient, quiet_frontend: None, input_folder: Path
) -> None:
    folders = (input_folder / "a", input_folder / "b")
    for folder in folders:
        folder.mkdir()
        for i in range(3):
            img.write_png(folder / f"{folder.name}_{i}.png", 64, 48, seed=i)
    outs = (comfy_server.output_dir / "copy_a", comfy_server.output_dir / "copy_b")
    with comfy_page(comfy_server.url) as page:
        skip_without_subgraphs(page)
        workflow = two_copies((str(folders[0]), str(folders[1])), (outs[0].name, outs[1].name))
        load_workflow(page, workflow)
        assert loader_ids(page) == ["5:1", "6:1"]
        click_run(page)
        client.wait_for(lambda: len(saved(outs[0])) == 3 and len(saved(outs[1])) == 3, timeout=120,
                        what="both copies' folders")
        client.wait_idle(timeout=60)
        assert saved(outs[0]) == ["a_0_x2.png", "a_1_x2.png", "a_2_x2.png"]
        assert saved(outs[1]) == ["b_0_x2.png", "b_1_x2.png", "b_2_x2.png"]
        assert server_batches(client, workflow["id"]) == {"5:1": str(folders[0]), "6:1": str(folders[1])}
        page.wait_for_function(f"() => ['5', '6'].every((id) => ({NODE_AT})(id)?.batchProgressText"
                               " === 'Batch: 3 / 3 - done')", timeout=10_000)

        open_graph_of(page, "5:1")  # copy 5's loader: its batch, its buttons
        wait_status(page, "5:1", "text.startsWith('3 / 3 - ')", timeout=10)
        click_button(page, "5:1", "Reset")
        wait_status(page, "5:1", "text.startsWith('Position forgotten')", timeout=10)
        assert server_batches(client, workflow["id"]) == {"6:1": str(folders[1])}
        page.wait_for_function(f"() => ({NODE_AT})('5')?.batchProgressText === ''", timeout=10_000)
        assert line_under(page, "6") == "Batch: 3 / 3 - done"

        open_graph_of(page, "6:1")  # the same loader object, now copy 6's: copy 6's batch
        wait_status(page, "6:1", "text.startsWith('3 / 3 - ') && text.includes('done')", timeout=10)
