"""Start a real ComfyUI (CPU) with this pack installed, and talk to it over HTTP like the browser.

Used by the end-to-end tests, scripts/demo.sh and the benchmarks. The server gets its own
--base-directory whose custom_nodes/ links to this checkout, so a test never touches a
user's ComfyUI folders.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_LINK_NAME = "comfyui-batch-image-processing"  # hyphens on purpose: ComfyUI must still load it
TEST_WORKFLOW_ID = "b1a7c0de-7e57-4000-8000-000000000000"
FIXTURE_PACK = Path(__file__).resolve().parent / "e2e" / "fixture_pack"


def default_comfyui_dir() -> Path:
    return Path(os.environ.get("COMFYUI_DIR") or REPO_ROOT / ".cache" / "comfyui").resolve()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ComfyServer:
    """A ComfyUI process on CPU; start() waits until /system_stats answers."""

    def __init__(
        self,
        base_dir: Path,
        comfyui_dir: Path | None = None,
        port: int | None = None,
        listen: str = "127.0.0.1",
        extra_args: tuple[str, ...] = (),
        with_fixture_pack: bool = False,
        python: str = sys.executable,
        name: str = "comfyui",
        env: dict[str, str] | None = None,
        front_end_root: str | None = None,
        cpu: bool = True,
    ) -> None:
        self.comfyui_dir = Path(comfyui_dir or default_comfyui_dir())
        if not (self.comfyui_dir / "main.py").is_file():
            raise RuntimeError(
                f"No ComfyUI at {self.comfyui_dir}: run scripts/test.sh (it provisions one) "
                "or set COMFYUI_DIR to your ComfyUI checkout."
            )
        self.base_dir = Path(base_dir)
        self.port = port or free_port()
        self.listen = listen
        self.extra_args = extra_args
        self.python = python
        self.cpu = cpu  # False: ComfyUI picks its device itself (bench/bench_gpu.py adds --gpu-only)
        # scripts/test.sh sets BIP_FRONT_END_ROOT to serve another frontend build (the newest).
        self.front_end_root = front_end_root or os.environ.get("BIP_FRONT_END_ROOT") or None
        # Several servers may share one base directory (one install, one server per GPU): each
        # gets its own log.
        self.log_path = self.base_dir / f"{name}.log"
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        for name in ("custom_nodes", "input", "output", "user", "temp", "models"):
            (self.base_dir / name).mkdir(parents=True, exist_ok=True)
        self._link(REPO_ROOT, PACK_LINK_NAME)
        if with_fixture_pack:
            self._link(FIXTURE_PACK, "bip_test_fixture_nodes")

    def _link(self, target: Path, name: str) -> None:
        link = self.base_dir / "custom_nodes" / name
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.listen.split(",")[0] in ("0.0.0.0", "", "127.0.0.1") else self.listen
        if host == "::":
            host = "[::1]"
        return f"http://{host}:{self.port}"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def user_dir(self) -> Path:
        return self.base_dir / "user"

    def start(self, timeout: float = 180.0) -> ComfyServer:
        cmd = [
            self.python, "main.py", *(["--cpu"] if self.cpu else []), "--disable-auto-launch",
            "--port", str(self.port), "--base-directory", str(self.base_dir),
        ]
        cmd += ["--listen"] if self.listen == "" else ["--listen", self.listen]
        if self.front_end_root:
            cmd += ["--front-end-root", self.front_end_root]
        cmd += list(self.extra_args)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            cmd, cwd=self.comfyui_dir, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, env=self.env,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        """Stop the server (kill=True: SIGKILL at once, like a crash)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGCONT)  # one a test froze (SIGSTOP) must see the SIGTERM
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


@contextmanager
def shared_servers(base: Path, count: int, lease_s: float) -> Iterator[list[ComfyServer]]:
    """count servers of one install (one base folder, their own ports) with the fixture pack and a
    shared_job lease of lease_s seconds, started; stopped when the block ends."""
    servers = [ComfyServer(base, with_fixture_pack=True, name=f"server{i}", env={"BATCH_IMAGE_LEASE_S": str(lease_s)})
               for i in range(count)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


class ComfyClient:
    """What the browser does: POST /prompt, then watch /queue and /history."""

    def __init__(self, base_url: str, client_id: str | None = None) -> None:
        self.base_url = base_url
        self.client_id = client_id or str(uuid.uuid4())

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise AssertionError(f"GET {path} -> {status}: {body}")
        return body

    def queue_prompt(self, prompt: dict, workflow: dict | None = None, **extra: Any) -> str:
        """Queue like the browser's Queue button; returns the prompt id."""
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        # The browser always embeds its workflow, with the id the frontend keeps for it; tests share
        # one id (one workflow) unless they pass another.
        body["extra_data"] = {"extra_pnginfo": {"workflow": workflow or {"id": TEST_WORKFLOW_ID, "bip_test": True}}}
        body.update(extra)
        status, resp = self.request("POST", "/prompt", body)
        if status != 200:
            raise AssertionError(f"POST /prompt -> {status}: {resp}")
        return resp["prompt_id"]

    def queue(self) -> dict:
        return self.get("/queue")

    def history(self) -> dict:
        return self.get("/history?max_items=100000")

    def interrupt(self) -> None:
        self.request("POST", "/interrupt", {})

    def wait_idle(self, timeout: float = 180.0, quiet_for: float = 1.0) -> None:
        """Wait until the queue has been empty (nothing running or pending) for quiet_for seconds."""
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while time.monotonic() < deadline:
            q = self.queue()
            if q["queue_running"] or q["queue_pending"]:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= quiet_for:
                return
            time.sleep(0.05)
        raise AssertionError(f"queue still busy after {timeout:.0f} s: {self.queue()}")

    def wait_for(self, predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")
