from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from batch_image_processing.utils.comfy.queue_control import (
    QueueError,
    build_payload,
    describe_rejection,
    post_prompt,
    strip_is_changed,
    template_from_hidden_inputs,
    template_from_queue_item,
)

PROMPT = {
    "1": {"class_type": "BatchImageLoader", "inputs": {"directory": "/x"}, "is_changed": [float("nan")]},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
}


def test_strip_is_changed_copies_and_removes_every_key() -> None:
    clean = strip_is_changed(PROMPT)
    assert all("is_changed" not in node for node in clean.values())
    assert "is_changed" in PROMPT["1"], "the original must not be mutated"
    clean["2"]["inputs"]["images"][1] = 5
    assert PROMPT["2"]["inputs"]["images"][1] == 0


def test_template_from_queue_item_keeps_client_workflow_and_auth() -> None:
    extra = {"client_id": "browser-1", "create_time": 123, "extra_pnginfo": {"workflow": {"w": 1}}}
    sensitive = {"auth_token_comfy_org": "tok", "api_key_comfy_org": "key"}
    item = (5, "pid", PROMPT, extra, ["2"], sensitive)
    template = template_from_queue_item(item)
    payload = build_payload(template)
    assert payload["client_id"] == "browser-1"
    assert payload["extra_data"] == {
        "extra_pnginfo": {"workflow": {"w": 1}}, "auth_token_comfy_org": "tok", "api_key_comfy_org": "key",
    }
    assert payload["partial_execution_targets"] == ["2"]
    assert "is_changed" not in payload["prompt"]["1"]
    assert str(uuid.UUID(payload["prompt_id"])) == payload["prompt_id"]
    assert build_payload(template)["prompt_id"] != payload["prompt_id"]
    # Five-field items (ComfyUI before the "sensitive" field) work too.
    assert build_payload(template_from_queue_item(item[:5]))["extra_data"] == {"extra_pnginfo": {"workflow": {"w": 1}}}


def test_template_from_hidden_inputs() -> None:
    payload = build_payload(template_from_hidden_inputs(PROMPT, {"workflow": {"a": 1}}, None), "fixed")
    assert payload == {
        "prompt": strip_is_changed(PROMPT), "extra_data": {"extra_pnginfo": {"workflow": {"a": 1}}},
        "prompt_id": "fixed",
    }


def test_describe_rejection_names_nodes_and_errors() -> None:
    body = json.dumps({
        "error": {"message": "Prompt outputs failed validation", "details": ""},
        "node_errors": {"1": {"class_type": "BatchImageLoader", "errors": [
            {"message": "Custom validation failed for node", "details": "directory - Folder '/x' does not exist."}]}},
    }).encode()
    text = describe_rejection(body)
    assert "Prompt outputs failed validation" in text
    assert "node 1 (BatchImageLoader)" in text and "Folder '/x' does not exist." in text


class Recorder(BaseHTTPRequestHandler):
    replies: ClassVar[list[tuple[int, bytes]]] = []
    seen: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        Recorder.seen.append({"path": self.path, "headers": dict(self.headers),
                              "body": json.loads(self.rfile.read(length))})
        code, body = Recorder.replies.pop(0)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    Recorder.replies, Recorder.seen = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_post_prompt_sends_json_without_origin(http_server: str) -> None:
    Recorder.replies = [(200, b'{"prompt_id": "p", "number": 1, "node_errors": {}}')]
    assert post_prompt(http_server + "/prompt", {"prompt": {}})["prompt_id"] == "p"
    sent = Recorder.seen[0]
    assert sent["path"] == "/prompt" and sent["body"] == {"prompt": {}}
    assert "Origin" not in sent["headers"]
    assert sent["headers"]["Content-Type"] == "application/json"


def test_post_prompt_raises_on_400_without_retrying(http_server: str) -> None:
    Recorder.replies = [(400, b'{"error": {"message": "bad"}, "node_errors": {}}'), (200, b"{}")]
    with pytest.raises(QueueError, match="rejected the next prompt: bad"):
        post_prompt(http_server + "/prompt", {}, sleep=lambda s: None)
    assert len(Recorder.seen) == 1


def test_post_prompt_retries_server_errors_then_succeeds(http_server: str) -> None:
    Recorder.replies = [(500, b"oops"), (503, b"busy"), (200, b'{"prompt_id": "ok"}')]
    waits: list[float] = []
    assert post_prompt(http_server + "/prompt", {}, sleep=waits.append)["prompt_id"] == "ok"
    assert waits == [0.25, 0.5]


def test_post_prompt_gives_up_on_a_dead_port_with_a_clear_message() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        expected = f"Could not reach ComfyUI at http://127.0.0.1:{port}/prompt after 3 tries"
        with pytest.raises(QueueError, match=expected):
            post_prompt(f"http://127.0.0.1:{port}/prompt", {}, retries=2, sleep=lambda s: None)
