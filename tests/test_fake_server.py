"""The fake OpenAI-compatible server, driven with a raw HTTP client over real sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import httpx2
import pytest

from genrouter.testing import FakeLLMServer, Reply

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]


def post(server: FakeLLMServer, body: dict[str, Any], path: str = "/v1/chat/completions") -> Any:
    with httpx2.Client() as http:
        return http.post(server.base_url + path, json=body)


def sse_payloads(text: str) -> list[Any]:
    events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


def test_default_answer_echoes_the_last_user_message(fake_server: FakeLLMServer) -> None:
    response = post(fake_server, {"model": "m1", "messages": MESSAGES})
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "m1"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello there"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


def test_stream_is_chunked_sse_with_usage_and_done(fake_server: FakeLLMServer) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    body["stream_options"] = {"include_usage": True}
    response = post(fake_server, body)
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_stream_without_include_usage_has_no_usage_chunk(fake_server: FakeLLMServer) -> None:
    response = post(fake_server, {"model": "m", "messages": MESSAGES, "stream": True})
    chunks = sse_payloads(response.text)[:-1]
    assert all("usage" not in c for c in chunks)


def test_scripted_replies_are_fifo_per_model(fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.text("for o3 #1"), Reply.text("for o3 #2"), model="o3-mini")
    fake_server.enqueue(Reply.text("anyone"))
    contents = [
        post(fake_server, {"model": model, "messages": MESSAGES}).json()["choices"][0]["message"][
            "content"
        ]
        for model in ("gpt-4o", "o3-mini", "o3-mini", "o3-mini")
    ]
    assert contents == ["anyone", "for o3 #1", "for o3 #2", "echo: hello there"]
    assert fake_server.pending == 0


def test_error_reply_has_openai_shape_and_headers(fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(
        Reply.error(429, code="rate_limit_exceeded", headers={"Retry-After": "0.1"})
    )
    response = post(fake_server, {"model": "m", "messages": MESSAGES})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "0.1"
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "rate_limit_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_error_reply_with_custom_body(fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.error(400, body={"code": "InvalidParameter", "message": "bad"}))
    response = post(fake_server, {"model": "m", "messages": MESSAGES})
    assert response.status_code == 400
    assert response.json() == {"code": "InvalidParameter", "message": "bad"}


def test_requests_are_recorded(fake_server: FakeLLMServer) -> None:
    post(
        fake_server,
        {"model": "m", "messages": MESSAGES},
        path="/compatible-mode/v1/chat/completions",
    )
    (recorded,) = fake_server.requests
    assert recorded.method == "POST"
    assert recorded.path == "/compatible-mode/v1/chat/completions"
    assert recorded.body == {"model": "m", "messages": MESSAGES}
    assert recorded.headers["content-type"] == "application/json"
    fake_server.reset()
    assert fake_server.requests == []


def test_base_urls(fake_server: FakeLLMServer) -> None:
    assert fake_server.openai_base_url == f"http://127.0.0.1:{fake_server.port}/v1"
    assert fake_server.dashscope_base_url.endswith("/compatible-mode/v1")


def test_unknown_path_is_404(fake_server: FakeLLMServer) -> None:
    with httpx2.Client() as http:
        response = http.get(fake_server.base_url + "/v1/embeddings")
    assert response.status_code == 404
    assert "no route" in response.json()["error"]["message"]


def test_reasoning_tool_calls_and_explicit_chunks(fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply(reasoning="think hard", chunks=["A", "B", "C"]))
    fake_server.enqueue(Reply.tool_call("lookup", {"q": "x"}))
    streamed = sse_payloads(
        post(fake_server, {"model": "m", "messages": MESSAGES, "stream": True}).text
    )
    deltas = [c["choices"][0]["delta"] for c in streamed[:-1] if c["choices"]]
    assert [d["reasoning_content"] for d in deltas if "reasoning_content" in d] == [
        "think",
        " hard",
    ]
    assert [d["content"] for d in deltas if d.get("content")] == ["A", "B", "C"]
    message = post(fake_server, {"model": "m", "messages": MESSAGES}).json()["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["tool_calls"][0]["function"] == {
        "name": "lookup",
        "arguments": '{"q": "x"}',
    }


def test_keep_alive_reuses_one_connection(fake_server: FakeLLMServer) -> None:
    with httpx2.Client() as http:
        for _ in range(3):
            http.post(
                fake_server.openai_base_url + "/chat/completions", json={"messages": MESSAGES}
            )
        assert fake_server.connections_open == 1
    deadline = time.monotonic() + 2
    while fake_server.connections_open and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_server.connections_open == 0


def test_delays_are_applied(fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.text("slow", delay_headers_s=0.15))
    started = time.monotonic()
    post(fake_server, {"model": "m", "messages": MESSAGES})
    assert time.monotonic() - started >= 0.15


def test_cut_after_closes_without_done(fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply.text("one two three four", cut_after=2))
    with pytest.raises(httpx2.RemoteProtocolError):
        post(fake_server, {"model": "m", "messages": MESSAGES, "stream": True})


def test_malformed_and_error_event(fake_server: FakeLLMServer) -> None:
    fake_server.enqueue(Reply(malformed="json"))
    with pytest.raises(json.JSONDecodeError):
        post(fake_server, {"model": "m", "messages": MESSAGES}).json()
    fake_server.enqueue(Reply(malformed="sse"))
    text = post(fake_server, {"model": "m", "messages": MESSAGES, "stream": True}).text
    assert text.startswith("<html>")
    fake_server.enqueue(Reply.text("a b c", error_event={"error": {"code": "boom"}}, error_after=1))
    payloads = sse_payloads(
        post(fake_server, {"model": "m", "messages": MESSAGES, "stream": True}).text
    )
    assert payloads[-1] == {"error": {"code": "boom"}}
    assert "[DONE]" not in payloads


async def test_async_context_manager() -> None:
    async with FakeLLMServer() as server, httpx2.AsyncClient() as http:
        response = await http.post(
            server.openai_base_url + "/chat/completions", json={"messages": MESSAGES}
        )
        assert response.json()["choices"][0]["message"]["content"] == "echo: hello there"
    assert server.connections_open == 0


async def test_stop_closes_streams_in_progress() -> None:
    server = FakeLLMServer().start()
    server.enqueue(Reply(chunks=["x"] * 100, delay_between_chunks_s=0.05))
    async with httpx2.AsyncClient() as http:
        body = {"messages": MESSAGES, "stream": True}
        async with http.stream(
            "POST", server.openai_base_url + "/chat/completions", json=body
        ) as r:
            assert r.status_code == 200
            await asyncio.to_thread(server.stop)
            with pytest.raises(httpx2.RemoteProtocolError):
                await r.aread()


def test_command_line_server_prints_url_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "genrouter.testing", "serve", "--port", "0", "--reply-chunks", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with httpx2.Client() as http:
            data = http.post(url + "/chat/completions", json={"messages": MESSAGES}).json()
        assert data["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 tok4 "
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
