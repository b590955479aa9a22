"""The pack loads in a real ComfyUI, from a folder name with hyphens, with no import error."""

from harness import PACK_LINK_NAME, ComfyClient, ComfyServer


def test_pack_loads_and_nodes_are_listed(comfy_server: ComfyServer, client: ComfyClient) -> None:
    log = comfy_server.log_text()
    assert f"custom_nodes/{PACK_LINK_NAME}" in log
    assert "IMPORT FAILED" not in "\n".join(line for line in log.splitlines() if PACK_LINK_NAME in line)
    info = client.get("/object_info/BatchImageLoader")["BatchImageLoader"]
    assert info["display_name"] == "Batch Image Loader"
    assert info["category"] == "image/batch"
    assert info["output_name"] == [
        "IMAGE", "MASK", "FILENAME", "BASE_NAME", "RELATIVE_PATH", "FULL_PATH", "INDEX", "TOTAL_COUNT",
        "BATCH_COMPLETE", "RUN_FILES",
    ]
    inputs = {**info["input"]["required"], **info["input"]["optional"]}
    for name, spec in inputs.items():
        assert spec[1].get("tooltip"), f"input {name} has no tooltip"
    assert set(info["input"]["hidden"]) == {"prompt", "extra_pnginfo", "unique_id"}
