"""Error classification: one table per wire dialect, and the server's x-should-retry (issue 15)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from genrouter import AsyncClient, MessageParam
from genrouter.config import RetryConfig
from genrouter.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from genrouter.providers._errors_http import (
    OPENAI_DIALECT,
    VLLM_DIALECT,
    error_from_payload,
    error_from_status,
    should_retry_header,
)
from genrouter.providers.dashscope import map_dashscope_error
from genrouter.routing.policy import Action, classify
from genrouter.testing import FakeLLMServer, Reply

HELLO: list[MessageParam] = [{"role": "user", "content": "Say hello"}]
FAST = {"attempts": 3, "backoff": {"initial_ms": 1, "max_ms": 5}}

# vLLM's ErrorResponse, in its two shapes (flat, and wrapped in "error"), inside a stream.
VLLM_FLAT = {"object": "error", "message": "bad n", "type": "BadRequestError", "code": 400}
VLLM_WRAPPED = {
    "error": {"message": "bad n", "type": "BadRequestError", "param": None, "code": 400}
}


@pytest.mark.parametrize("payload", [VLLM_FLAT, VLLM_WRAPPED])
def test_vllm_in_stream_errors_are_bad_requests_not_server_errors(payload: dict[str, Any]) -> None:
    error = error_from_payload(payload, provider="vllm")
    assert type(error) is BadRequestError
    assert error.status_code == 400 and error.code is None  # the int code is the status
    assert classify(error, RetryConfig()) is Action.NEXT  # not retried, not a server fault


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"error": {"message": "x", "type": "NotFoundError"}}, NotFoundError),
        ({"error": {"message": "x", "type": "InternalServerError"}}, ServerError),
        (
            {"error": {"message": "x", "type": "exceed_context_size_error"}},
            ContextWindowExceededError,
        ),
        ({"error": {"message": "x", "type": "invalid_request_error"}}, BadRequestError),
        ({"error": {"message": "x", "type": "rate_limit_error"}}, RateLimitError),
        ({"error": {"message": "x", "code": "503"}}, ServerError),
        ({"error": "mystery"}, ServerError),
    ],
)
def test_in_stream_types_follow_the_dialect_table(
    payload: dict[str, Any], expected: type[Exception]
) -> None:
    assert type(error_from_payload(payload, dialect=VLLM_DIALECT)) is expected


def test_openai_table_does_not_know_vllm_names() -> None:
    # OpenAI never sends vLLM's exception names; its own table leaves them to the default.
    assert (
        type(error_from_payload(VLLM_WRAPPED["error"], dialect=OPENAI_DIALECT)) is BadRequestError
    )
    unknown = {"error": {"message": "x", "type": "BadRequestError"}}
    assert type(error_from_payload(unknown, dialect=OPENAI_DIALECT)) is ServerError
    assert type(error_from_payload(unknown, dialect=VLLM_DIALECT)) is BadRequestError


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"Unauthorized",
        b'{"error": {"message": "You are not authorized", "type": "InvalidRequest"}}',
        b'{"code": "InvalidParameter", "message": "no credential"}',
    ],
)
def test_dashscope_401_is_an_authentication_error(body: bytes) -> None:
    import json

    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = {"message": body.decode() or None}
    assert type(map_dashscope_error(401, payload)) is AuthenticationError


def test_dashscope_generic_codes_still_decide_without_a_status() -> None:
    long = {"code": "InvalidParameter", "message": "Range of input length should be [1, 30720]"}
    assert type(map_dashscope_error(None, long)) is ContextWindowExceededError
    assert type(map_dashscope_error(None, {"code": "InternalError", "message": "x"})) is ServerError
    assert type(map_dashscope_error(None, {"code": "Throttling.RateQuota", "message": "x"})) is (
        RateLimitError
    )


def test_x_should_retry_header_is_kept_and_obeyed() -> None:
    assert should_retry_header({"x-should-retry": "true"}) is True
    assert should_retry_header({"x-should-retry": "False"}) is False
    assert should_retry_header({"x-should-retry": "maybe"}) is None
    assert should_retry_header({}) is None
    retry = RetryConfig()
    no = error_from_status(503, b"{}", {"x-should-retry": "false"})
    yes = error_from_status(400, b"{}", {"x-should-retry": "true"})
    plain = error_from_status(503, b"{}", {})
    assert (no.should_retry, yes.should_retry, plain.should_retry) == (False, True, None)
    assert classify(no, retry) is Action.NEXT
    assert classify(yes, retry) is Action.RETRY
    assert classify(plain, retry) is Action.RETRY
    ds = map_dashscope_error(500, {"code": "InternalError"}, {"x-should-retry": "false"})
    assert classify(ds, retry) is Action.NEXT


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _config(server: FakeLLMServer) -> dict[str, Any]:
    return {
        "providers": {"vllm": {"type": "openai_compatible", "base_url": server.openai_base_url}},
        "models": {"vllm/a": {}, "vllm/b": {}},
        "routes": {"default": {"candidates": ["vllm/a", "vllm/b"], "retry": FAST}},
    }


async def test_a_vllm_stream_error_moves_on_without_retrying(server: FakeLLMServer) -> None:
    server.enqueue(Reply(error_event=VLLM_WRAPPED), model="a")
    server.enqueue(Reply.text("from b"), model="b")
    async with AsyncClient(_config(server), env={}) as client:
        stream = await client.chat.completions.create(model="default", messages=HELLO, stream=True)
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert "from b" in text
        assert [r.body["model"] for r in server.requests] == ["a", "b"]  # a: once, not 3 times
        assert client.health.circuit("vllm/a").state(0.0) == "closed"
    route = stream.route
    assert route is not None and route.attempts[0].error_type == "BadRequestError"


async def test_x_should_retry_over_the_wire(server: FakeLLMServer) -> None:
    # "false" on a 503: no retry of a; "true" on a 400: b is retried and answers.
    server.enqueue(Reply.error(503, headers={"x-should-retry": "false"}), model="a")
    server.enqueue(
        Reply.error(400, headers={"x-should-retry": "true"}), Reply.text("ok"), model="b"
    )
    async with AsyncClient(_config(server), env={}) as client:
        response = await client.chat.completions.create(model="default", messages=HELLO)
    assert response.choices[0].message.content == "ok"
    assert [r.body["model"] for r in server.requests] == ["a", "b", "b"]
