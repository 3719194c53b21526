"""Rules test the same prompt count the decision shows (issue 15).

``min_prompt_tokens`` / ``max_prompt_tokens`` used to test ``len(model_dump_json()) // 4``:
a data-URI image inflated that ~1000x (a prompt shown as a few hundred tokens matched
``min_prompt_tokens = 50000``) and CJK text deflated it ~4x.
"""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from genrouter import AsyncClient, MessageParam
from genrouter.errors import ConfigError
from genrouter.tokens import TokenCounter

# These tests are about counting and media, not lifecycle: judge models as of before the
# 2026 retirements (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("catalog_before_2026_retirements")

KEYS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "DASHSCOPE_API_KEY": "sk-test-ds-98765"}
COUNTER = TokenCounter()  # tokenizer files load once for the module


def _config(threshold: dict[str, Any], first: str = "openai/gpt-4o-mini") -> dict[str, Any]:
    return {
        "routes": {
            "default": {"candidates": ["openai/o3-mini"]},
            "long": {"candidates": [first, "dashscope/qwen-vl-max"]},
        },
        "rules": [{"name": "long-prompts", "when": threshold, "route": "long"}],
    }


def _big_png_data_uri(width: int = 512, height: int = 512, padding: int = 400_000) -> str:
    """A PNG data URI whose header says 512x512 and whose body is large (~530 KB of base64)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tEXt", b"x" * padding)
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_a_data_uri_image_does_not_inflate_the_rule_count() -> None:
    image = _big_png_data_uri()
    messages: list[MessageParam] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": image}},
            ],
        }
    ]
    assert len(image) // 4 > 50_000  # what the old rough count saw
    client = AsyncClient(_config({"min_prompt_tokens": 50_000}), env=KEYS, token_counter=COUNTER)
    decision = client.route(messages=messages)
    assert decision.rule is None and decision.route == "default"
    assert decision.prompt_tokens < 1_000  # 512x512 costs a few hundred tokens on OpenAI


def test_cjk_text_is_counted_by_the_tokenizer_not_by_bytes() -> None:
    text = "東京は日本の首都であり、世界有数の大都市です。" * 400  # 9,200 characters
    messages: list[MessageParam] = [{"role": "user", "content": text}]
    client = AsyncClient(_config({"min_prompt_tokens": 5_000}), env=KEYS, token_counter=COUNTER)
    decision = client.route(messages=messages)
    # The old count: len(json) // 4, about 2,300 tokens, below the threshold.
    assert decision.rule == "long-prompts" and decision.route == "long"
    # The rule tested the count the decision shows for its route (its first candidate's).
    assert decision.prompt_tokens >= 5_000
    assert decision.candidates[0].model == "openai/gpt-4o-mini"
    assert decision.candidates[0].prompt_tokens == decision.prompt_tokens


def test_the_rule_matches_exactly_at_the_shown_count() -> None:
    messages: list[MessageParam] = [{"role": "user", "content": "hello there, how are you today?"}]
    shown = AsyncClient(_config({}), env=KEYS, token_counter=COUNTER).route(
        model="long", messages=messages
    )
    at = AsyncClient(
        _config({"min_prompt_tokens": shown.prompt_tokens}), env=KEYS, token_counter=COUNTER
    )
    above = AsyncClient(
        _config({"min_prompt_tokens": shown.prompt_tokens + 1}), env=KEYS, token_counter=COUNTER
    )
    assert at.route(messages=messages).rule == "long-prompts"
    assert above.route(messages=messages).rule is None


def test_a_rule_may_name_its_tokenizer() -> None:
    text = "東京は日本の首都です。" * 300
    messages: list[MessageParam] = [{"role": "user", "content": text}]
    by_estimate = AsyncClient(
        _config({"min_prompt_tokens": 3_000, "tokenizer": "estimate"}),
        env=KEYS,
        token_counter=COUNTER,
    )
    # The estimate counts a CJK character as a token: 3,300 characters pass 3,000.
    assert by_estimate.route(messages=messages).rule == "long-prompts"
    with pytest.raises(ConfigError) as caught:
        AsyncClient(_config({"tokenizer": "gpt2"}), env=KEYS, token_counter=COUNTER)
    assert caught.value.location == "rules[0].when.tokenizer"


def test_rules_without_thresholds_count_nothing() -> None:
    from genrouter.config import Rule
    from genrouter.request import build_request
    from genrouter.routing.policy import match_rule

    request = build_request({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    asked: list[str] = []

    def count(rule: Rule) -> int:
        asked.append(rule.route)
        return 10

    rules = [
        Rule.model_validate({"when": {"tools": True}, "route": "tools"}),
        Rule.model_validate({"when": {"max_prompt_tokens": 5}, "route": "short"}),
        Rule.model_validate({"when": {"min_prompt_tokens": 5}, "route": "long"}),
    ]
    hit = match_rule(rules, request, request.needs(), count)
    assert hit is not None and hit[1].route == "long"
    assert asked == ["short", "long"]  # counted lazily, only for rules with thresholds
