"""One real ComfyUI server per test session; each test gets fresh folders inside it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import run_summary
from harness import ComfyClient, ComfyServer


def comfyui_version(server: ComfyServer) -> str:
    stats = ComfyClient(server.url).get("/system_stats")
    return str(stats["system"].get("comfyui_version", "unknown"))


SERVERS_SEEN: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SERVERS_SEEN:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    server = ComfyServer(tmp_path_factory.mktemp("comfy-base"), with_fixture_pack=True).start()
    version, frontend = comfyui_version(server), run_summary.frontend_label()
    run_summary.SERVERS.append(f"ComfyUI {version} + frontend {frontend}")
    SERVERS_SEEN.append(
        f"end-to-end tests ran against a real ComfyUI {version} (CPU) with frontend {frontend} "
        f"from {server.comfyui_dir}"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name in ("comfy_server", "own_server"):
            server = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(server, ComfyServer):
                report.sections.append((f"ComfyUI log ({name})", server.log_tail(150)))


@pytest.fixture
def test_name(request: pytest.FixtureRequest) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)
    if len(name) <= 60:
        return name
    # Cut, but keep parametrized variants apart: the end of a long name is where they differ.
    return f"{name[:51]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


@pytest.fixture
def client(comfy_server: ComfyServer) -> Iterator[ComfyClient]:
    c = ComfyClient(comfy_server.url)
    yield c
    # Leave the shared server idle for the next test, whatever this one did.
    c.request("POST", "/queue", {"clear": True})
    c.interrupt()
    c.wait_idle(timeout=60, quiet_for=0.3)


@pytest.fixture
def input_folder(comfy_server: ComfyServer, test_name: str) -> Path:
    folder = comfy_server.input_dir / test_name
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def output_folder(comfy_server: ComfyServer, test_name: str) -> Path:
    return comfy_server.output_dir / test_name


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ComfyServer]:
    """A separate server for tests that kill, restart or reconfigure it (not started yet)."""
    server = ComfyServer(tmp_path / "base", with_fixture_pack=True)
    try:
        yield server
    finally:
        server.stop()
