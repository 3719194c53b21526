"""Model lifecycle: the client's date moves across deprecations and shutdowns."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from genrouter import (
    AsyncClient,
    Client,
    GenRouterDeprecationWarning,
    InvalidRequestError,
    MessageParam,
    ModelRetiredError,
)
from genrouter.catalog import load_builtin_catalog
from genrouter.cli import main
from genrouter.lifecycle import lifecycle, resolve_retired, retired_reason, utc_today
from genrouter.routing.planner import ZERO_CONFIG_REMOTE
from genrouter.testing import FakeLLMServer, Reply

HI: list[MessageParam] = [{"role": "user", "content": "hi"}]
KEYS = {"OPENAI_API_KEY": "sk-lifecycle-test-1234", "DASHSCOPE_API_KEY": "sk-ds-lifecycle-5678"}


def on(day: date) -> Callable[[], date]:
    return lambda: day


def wire(server: FakeLLMServer, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"type": "openai", "base_url": server.openai_base_url},
            "dashscope": {"type": "dashscope", "base_url": server.dashscope_base_url},
        },
        **extra,
    }


# -- the pure rule -----------------------------------------------------------------------------


def test_o3_mini_is_live_then_deprecated_then_retired() -> None:
    spec = load_builtin_catalog().get("o3-mini")
    assert spec.deprecated_on == date(2026, 4, 22)
    assert spec.shutdown_on == date(2026, 10, 23)
    assert lifecycle(spec, date(2026, 4, 21)).status == "live"
    assert lifecycle(spec, date(2026, 4, 22)).status == "deprecated"
    assert lifecycle(spec, date(2026, 10, 22)).describe() == (
        "deprecated until 2026-10-23 -> openai/gpt-6-luna"
    )
    assert lifecycle(spec, date(2026, 10, 23)).describe() == (
        "retired on 2026-10-23 -> openai/gpt-6-luna"
    )
    assert retired_reason(spec, date(2026, 10, 22)) is None
    assert retired_reason(spec, date(2026, 12, 1)) == "retired on 2026-10-23; use openai/gpt-6-luna"


def test_every_dated_fact_and_price_has_a_source_and_successors_exist() -> None:
    catalog = load_builtin_catalog()
    for spec in catalog:
        if spec.local:
            continue
        assert spec.sources, spec.id
        covered = {fact for source in spec.sources for fact in source.facts}
        for field in ("deprecated_on", "shutdown_on", "input_price", "output_price"):
            if getattr(spec, field) is not None:
                assert field in covered, (spec.id, field)
        if spec.successor is not None:
            successor = catalog.get(spec.successor)
            assert successor.shutdown_on is None, (spec.id, spec.successor)
    # What the vendor's own page confirmed is marked so, and what it did not is not.
    assert any(s.verified for s in catalog.get("dashscope/qwen-vl-max").sources)
    assert not catalog.get("openai/o3-mini").verified


def test_resolve_retired_follows_a_chain_only_when_asked() -> None:
    catalog = load_builtin_catalog().merged(
        {"openai/gpt-6-luna": {"shutdown_on": "2027-06-01", "successor": "openai/gpt-6.1-sol"}}
    )
    o3 = catalog.get("o3-mini")
    later = date(2027, 6, 1)
    spec, notes = resolve_retired(o3, later, follow=True, lookup=catalog.resolve)
    assert spec.id == "openai/gpt-6.1-sol"
    assert len(notes) == 2 and "openai/gpt-6-luna was retired on 2027-06-01" in notes[1]
    with pytest.raises(ModelRetiredError, match="use openai/gpt-6-luna instead"):
        resolve_retired(o3, later, follow=False, lookup=catalog.resolve)
    orphan = o3.model_copy(update={"successor": None})
    with pytest.raises(ModelRetiredError, match="no known successor"):
        resolve_retired(orphan, later, follow=True, lookup=catalog.resolve)
    assert resolve_retired(o3, date(2026, 1, 1), follow=False, lookup=catalog.resolve) == (o3, [])


def test_utc_today_is_a_date() -> None:
    assert isinstance(utc_today(), date)


# -- routing ------------------------------------------------------------------------------------


def test_a_retired_candidate_is_excluded_naming_its_successor() -> None:
    config = {"routes": {"default": {"candidates": ["openai/o3-mini", "openai/gpt-6-luna"]}}}
    before = AsyncClient(config, env=KEYS, today=on(date(2026, 3, 1)), model_cache=False)
    assert before.route(messages=HI).plan == ("openai/o3-mini", "openai/gpt-6-luna")

    after = AsyncClient(config, env=KEYS, today=on(date(2026, 10, 23)), model_cache=False)
    decision = after.route(messages=HI)
    assert decision.plan == ("openai/gpt-6-luna",)
    o3 = next(c for c in decision.candidates if c.model == "openai/o3-mini")
    assert o3.excluded_because == "retired on 2026-10-23; use openai/gpt-6-luna"
    assert "excluded: retired on 2026-10-23; use openai/gpt-6-luna" in decision.explain()


def test_naming_a_retired_model_raises_with_what_to_use_instead() -> None:
    client = AsyncClient(env=KEYS, today=on(date(2026, 12, 1)), model_cache=False)
    with pytest.raises(ModelRetiredError) as caught:
        client.route(model="o3-mini", messages=HI)
    error: ModelRetiredError = caught.value
    assert isinstance(error, InvalidRequestError)
    assert error.successor == "openai/gpt-6-luna"
    assert error.shutdown_on == date(2026, 10, 23)
    assert error.param == "model"
    assert "use openai/gpt-6-luna instead" in str(error)
    # The day before shutdown it still routes (with the deprecation warning).
    earlier = AsyncClient(env=KEYS, today=on(date(2026, 10, 22)), model_cache=False)
    with pytest.warns(GenRouterDeprecationWarning, match="shuts down on 2026-10-23"):
        assert earlier.route(model="o3-mini", messages=HI).plan == ("openai/o3-mini",)


async def test_follow_successors_sends_the_request_to_the_successor(
    fake_server: FakeLLMServer,
) -> None:
    fake_server.enqueue(Reply.text("from luna"))
    config = wire(fake_server, follow_successors=True)
    async with AsyncClient(config, env=KEYS, today=on(date(2026, 12, 1))) as client:
        decision = client.route(model="openai/o3-mini", messages=HI)
        assert decision.plan == ("openai/gpt-6-luna",)
        response = await client.chat.completions.create(model="openai/o3-mini", messages=HI)
    assert response.choices[0].message.content == "from luna"
    assert fake_server.requests[-1].body["model"] == "gpt-6-luna"
    assert response.route is not None
    assert response.route.model == "openai/gpt-6-luna"
    expected = (
        "openai/o3-mini was retired on 2026-10-23; following its successor openai/gpt-6-luna "
        "(follow_successors = true)"
    )
    assert expected in response.route.notes


def test_follow_successors_also_follows_qwen_vl_to_qwen3_6() -> None:
    client = AsyncClient(
        {"follow_successors": True}, env=KEYS, today=on(date(2026, 10, 10)), model_cache=False
    )
    decision = client.route(model="qwen-vl-max", messages=HI)
    assert decision.plan == ("dashscope/qwen3.6-plus",)
    assert any("qwen-vl-max was retired on 2026-10-10" in n for n in decision.notes)


async def test_a_deprecated_model_warns_once_per_client_and_notes_it(
    fake_server: FakeLLMServer,
) -> None:
    today = on(date(2026, 12, 1))  # gpt-4o: deprecated 2026-10-14, shuts down 2027-01-14
    async with AsyncClient(wire(fake_server), env=KEYS, today=today) as client:
        with pytest.warns(GenRouterDeprecationWarning) as caught:
            client.route(model="gpt-4o", messages=HI)
        assert len(caught) == 1
        assert str(caught[0].message) == (
            "openai/gpt-4o is deprecated, shuts down on 2027-01-14; move to openai/gpt-6-luna"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a second warning would raise here
            response = await client.chat.completions.create(model="gpt-4o", messages=HI)
        assert response.route is not None
        assert response.route.model == "openai/gpt-4o"
        assert str(caught[0].message) in response.route.notes
    # Another client warns again: the state is per client.
    other = AsyncClient(wire(fake_server), env=KEYS, today=today, model_cache=False)
    with pytest.warns(GenRouterDeprecationWarning):
        other.route(model="gpt-4o", messages=HI)


def test_before_its_deprecation_a_model_is_silent_and_after_shutdown_it_is_gone() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = AsyncClient(env=KEYS, today=on(date(2026, 10, 13)), model_cache=False)
        assert quiet.route(model="gpt-4o", messages=HI).notes == ()
    gone = AsyncClient(env=KEYS, today=on(date(2027, 1, 14)), model_cache=False)
    with pytest.raises(ModelRetiredError, match="gpt-4o was retired on 2027-01-14"):
        gone.route(model="gpt-4o", messages=HI)


def test_zero_config_route_with_both_keys_picks_live_models() -> None:
    env = {"OPENAI_API_KEY": "x", "DASHSCOPE_API_KEY": "y"}
    catalog = load_builtin_catalog()
    for day in (date(2026, 12, 1), utc_today()):
        client = AsyncClient(env=env, today=on(day), model_cache=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no deprecated model may be picked
            decision = client.route(messages=HI)
        remote = [m for m in decision.plan if not m.startswith("local/")]
        assert remote[: len(ZERO_CONFIG_REMOTE)] == list(ZERO_CONFIG_REMOTE)
        for model in remote:
            assert lifecycle(catalog.get(model), day).status == "live", model
        image: list[MessageParam] = [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _PNG}}]}
        ]
        assert client.route(messages=image).plan[0] == "openai/gpt-6-luna"


def test_sync_client_takes_the_date_too() -> None:
    with Client(env=KEYS, today=on(date(2026, 12, 1)), model_cache=False) as client:
        with pytest.raises(ModelRetiredError):
            client.route(model="o4-mini", messages=HI)
        statuses = {s.spec.id: s.lifecycle for s in client.models()}
    assert statuses["openai/o4-mini"] == "retired on 2026-10-23 -> openai/gpt-6-luna"
    assert statuses["openai/gpt-4o-mini"] == "deprecated until 2027-01-14 -> openai/gpt-6-luna"
    assert statuses["openai/gpt-6-luna"] == "live"


# -- the command line ---------------------------------------------------------------------------


def test_route_explain_on_o3_mini_names_its_successor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI judges by today's real date (2026-12-01 or later): o3-mini is retired.
    monkeypatch.setenv("GENROUTER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-lifecycle-1234")
    assert main(["route", "--explain", "--model", "o3-mini", "hi"]) == 2  # a request error
    _, err = capsys.readouterr()
    assert "ModelRetiredError" in err
    assert "openai/o3-mini was retired on 2026-10-23; use openai/gpt-6-luna instead" in err

    config = tmp_path / "genrouter.json"
    routes = {"default": {"candidates": ["openai/o3-mini", "openai/gpt-6-luna"]}}
    config.write_text(json.dumps({"routes": routes}))
    assert main(["--config", str(config), "route", "--explain", "hi"]) == 0
    out, _ = capsys.readouterr()
    assert "excluded: retired on 2026-10-23; use openai/gpt-6-luna" in out
    assert "plan: openai/gpt-6-luna" in out


def test_models_lists_status_and_price_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GENROUTER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["models"]) == 0
    out, _ = capsys.readouterr()
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "retired on 2026-10-23 -> openai/gpt-6-luna" in rows["openai/o3-mini"]
    assert "2026-12-01" in rows["openai/gpt-6-luna"]
    assert "(unverified)" not in rows["openai/gpt-6-luna"]
    assert "live" in rows["openai/gpt-6-luna"]
    assert "(unverified)" in rows["openai/o3-mini"]


_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAE"
    "hQGAhKmMIQAAAABJRU5ErkJggg=="
)
