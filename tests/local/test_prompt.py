"""Pure request translation for local models (no llama.cpp)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from genrouter.errors import InvalidRequestError, UnsupportedInputError
from genrouter.providers.local._prompt import (
    QA_STOPS,
    Turn,
    build_qa_prompt,
    build_turns,
    grammar_spec,
    parse_local_options,
    sampling_arguments,
)
from genrouter.request import ChatRequest, build_request
from tests.local.conftest import make_spec


def _request(messages: list[dict[str, Any]], **params: Any) -> ChatRequest:
    return build_request({"model": "local/tiny", "messages": messages, **params})


def test_system_prompt_folds_into_first_user_turn_for_r1() -> None:
    spec = make_spec("m.gguf", system_prompt="fold_into_user")
    request = _request(
        [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello?"},
            {"role": "assistant", "content": "Bonjour.", "reasoning_content": "hidden"},
            {"role": "user", "content": "And now?"},
        ]
    )
    turns, partial = build_turns(request, spec)
    assert turns == [
        Turn("user", "Answer in French.\n\nHello?"),
        Turn("assistant", "Bonjour."),
        Turn("user", "And now?"),
    ]
    assert partial is None


def test_system_prompt_is_kept_by_default() -> None:
    turns, _ = build_turns(
        _request([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]),
        make_spec("m.gguf"),
    )
    assert turns == [Turn("system", "S"), Turn("user", "U")]


def test_qa_prompt_shape() -> None:
    turns = [Turn("system", "Be brief."), Turn("user", "What is 2+2?")]
    assert build_qa_prompt(turns) == "Be brief.\nQ: What is 2+2?\nA:"
    more = [*turns, Turn("assistant", "4"), Turn("user", "And 3+3?")]
    assert build_qa_prompt(more, partial="It is") == (
        "Be brief.\nQ: What is 2+2?\nA: 4\nQ: And 3+3?\nA: It is"
    )
    assert "\nQ:" in QA_STOPS


def test_partial_assistant_message_is_continued() -> None:
    request = _request(
        [
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "Start", "partial": True},
        ]
    )
    turns, partial = build_turns(request, make_spec("m.gguf"))
    assert turns == [Turn("user", "Q")]
    assert partial == "Start"


def test_image_input_is_unsupported() -> None:
    request = _request(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                ],
            }
        ]
    )
    with pytest.raises(UnsupportedInputError, match="text only"):
        build_turns(request, make_spec("m.gguf"))


def test_unknown_local_option_is_rejected() -> None:
    request = _request(
        [{"role": "user", "content": "x"}], provider_options={"local": {"mirostat": 2}}
    )
    with pytest.raises(InvalidRequestError) as info:
        parse_local_options(request)
    assert info.value.param == "provider_options.local.mirostat"


def test_sampling_defaults_sit_under_the_callers_values() -> None:
    spec = make_spec(
        "m.gguf",
        defaults={"temperature": 0.6, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1},
        max_output_tokens=300,
    )
    request = _request(
        [{"role": "user", "content": "x"}],
        temperature=0.1,
        seed=7,
        max_completion_tokens=50,
        presence_penalty=0.5,
        logprobs=True,
        provider_options={"local": {"top_k": 20, "repeat_penalty": 1.3}},
    )
    dropped: list[str] = []
    args = sampling_arguments(request, spec, parse_local_options(request), dropped)
    assert args == {
        "temperature": 0.1,
        "top_p": 0.95,
        "min_p": 0.05,
        "repeat_penalty": 1.3,
        "top_k": 20,
        "seed": 7,
        "presence_penalty": 0.5,
        "max_tokens": 50,
    }
    assert dropped == ["logprobs"]


def test_max_tokens_defaults_to_and_is_capped_by_the_catalog() -> None:
    spec = make_spec("m.gguf", max_output_tokens=300)
    for params, expected in (({}, 300), ({"max_tokens": 10_000}, 300), ({"max_tokens": 9}, 9)):
        request = _request([{"role": "user", "content": "x"}], **params)
        args = sampling_arguments(request, spec, parse_local_options(request), [])
        assert args["max_tokens"] == expected


def test_several_choices_are_unsupported() -> None:
    request = _request([{"role": "user", "content": "x"}], n=2)
    with pytest.raises(UnsupportedInputError):
        sampling_arguments(request, make_spec("m.gguf"), parse_local_options(request), [])


def test_response_format_translation() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    cases: list[tuple[dict[str, Any] | None, str | None]] = [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_object"}, "json_object"),
        ({"type": "json_object", "schema": schema}, "json_schema"),
        ({"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}, "json_schema"),
    ]
    for fmt, kind in cases:
        request = _request([{"role": "user", "content": "x"}], response_format=fmt)
        spec = grammar_spec(request, parse_local_options(request))
        assert (spec.kind if spec else None) == kind
        if kind == "json_schema":
            assert spec is not None and json.loads(spec.source or "") == schema


def test_response_format_errors() -> None:
    bad = _request(
        [{"role": "user", "content": "x"}],
        response_format={"type": "json_schema", "json_schema": {"name": "s"}},
    )
    with pytest.raises(InvalidRequestError, match="schema"):
        grammar_spec(bad, parse_local_options(bad))
    both = _request(
        [{"role": "user", "content": "x"}],
        response_format={"type": "json_object"},
        provider_options={"local": {"grammar": 'root ::= "a"'}},
    )
    with pytest.raises(InvalidRequestError, match="not both"):
        grammar_spec(both, parse_local_options(both))
