"""Response types: OpenAI's chat completion shape, plus the route that produced it.

Field names match OpenAI's, so code written against ``openai.types.chat.ChatCompletion`` reads
these unchanged, and ``model_dump()`` / ``model_dump_json()`` give OpenAI-compatible JSON. The
extra ``route`` attribute (a :class:`RouteInfo`) is excluded from dumps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "CandidateEvaluation",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "ChatCompletionMessageToolCall",
    "ChatCompletionTokenLogprob",
    "Choice",
    "ChoiceDelta",
    "ChoiceDeltaFunctionCall",
    "ChoiceDeltaToolCall",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionTokensDetails",
    "Function",
    "PromptTokensDetails",
    "RouteDecision",
    "RouteInfo",
    "TopLogprob",
    "Usage",
]


class _Wire(BaseModel):
    """Vendor payloads: keep unknown fields rather than fail on them."""

    model_config = ConfigDict(extra="allow")

    def to_dict(
        self,
        *,
        mode: Literal["json", "python"] = "python",
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        warnings: bool = True,
    ) -> dict[str, Any]:
        """openai-python's ``to_dict()``: by default only the fields the answer carried."""
        return self.model_dump(
            mode=mode,
            by_alias=use_api_names,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
            warnings=warnings,
        )

    def to_json(
        self,
        *,
        indent: int | None = 2,
        use_api_names: bool = True,
        exclude_unset: bool = True,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        warnings: bool = True,
    ) -> str:
        """openai-python's ``to_json()``: :meth:`to_dict` as JSON text (indented by 2)."""
        return self.model_dump_json(
            indent=indent,
            by_alias=use_api_names,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
            warnings=warnings,
        )


class CompletionTokensDetails(_Wire):
    reasoning_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None
    audio_tokens: int | None = None


class PromptTokensDetails(_Wire):
    cached_tokens: int | None = None
    audio_tokens: int | None = None


class Usage(_Wire):
    """Token counts. ``completion_tokens_details.reasoning_tokens`` counts hidden reasoning."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None

    @property
    def reasoning_tokens(self) -> int:
        details = self.completion_tokens_details
        return (details.reasoning_tokens or 0) if details else 0

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details
        return (details.cached_tokens or 0) if details else 0


class Function(_Wire):
    name: str
    arguments: str


class ChatCompletionMessageToolCall(_Wire):
    id: str
    type: Literal["function"] = "function"
    function: Function


class ChatCompletionMessage(_Wire):
    """The assistant's answer. ``reasoning_content`` holds visible reasoning (R1, Qwen, …)."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChatCompletionMessageToolCall] | None = None


class TopLogprob(_Wire):
    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None


class ChatCompletionTokenLogprob(_Wire):
    """One output token's log probability (``choice.logprobs.content[i]``), as OpenAI's."""

    token: str = ""
    logprob: float = 0.0
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(_Wire):
    """``choice.logprobs`` with ``logprobs=True``: per-token log probabilities, as OpenAI's."""

    content: list[ChatCompletionTokenLogprob] | None = None
    refusal: list[ChatCompletionTokenLogprob] | None = None


# A server with another logprobs shape (not an object) keeps it as it came.
_Logprobs = Annotated[ChoiceLogprobs | Any | None, Field(union_mode="left_to_right")]


class Choice(_Wire):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: str | None = None
    logprobs: _Logprobs = None


class ChoiceDeltaFunctionCall(_Wire):
    name: str | None = None
    arguments: str | None = None


class ChoiceDeltaToolCall(_Wire):
    index: int = 0
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChoiceDeltaFunctionCall | None = None


class ChoiceDelta(_Wire):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[ChoiceDeltaToolCall] | None = None


class ChunkChoice(_Wire):
    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None
    logprobs: _Logprobs = None


AttemptOutcome = Literal["ok", "error", "interrupted", "cancelled"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at one candidate: which model, how it ended, how long it took."""

    model: str
    provider: str
    outcome: AttemptOutcome
    error_type: str | None = None
    error: str | None = None
    status_code: int | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    retry_delay_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CandidateEvaluation:
    """What routing thought of one candidate: its estimates, or why it was excluded.

    A plain dataclass (not a pydantic model): a decision builds one per candidate per request,
    and validating values that routing itself computed would be most of the decision's cost.
    """

    model: str
    provider: str
    prompt_tokens: int | None = None
    estimated_cost_usd: float | None = None
    estimated_latency_ms: float | None = None
    score: float | None = None
    excluded_because: str | None = None
    fallback: bool = False
    # Before calibration (genrouter.routing.calibration), and the relative error allowed for.
    prompt_tokens_counted: int | None = None
    prompt_tokens_uncertainty: float = 0.0

    @property
    def eligible(self) -> bool:
        return self.excluded_because is None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The outcome of routing one request, computed without I/O.

    ``plan`` lists the models to try in order; ``candidates`` has every candidate considered,
    eligible or not, with the numbers behind its rank.
    """

    route: str
    objective: str
    rule: str | None
    prompt_tokens: int
    prompt_tokens_method: str
    expected_output_tokens: int
    candidates: tuple[CandidateEvaluation, ...]
    plan: tuple[str, ...]
    notes: tuple[str, ...] = ()  # e.g. a deprecated model in the plan, a followed successor

    def explain(self) -> str:
        """A human-readable table of the decision (what ``genrouter route --explain`` prints)."""
        from genrouter.routing.explain import render_decision

        text: str = render_decision(self)
        return text


def _set_fields(model: BaseModel, /, **values: Any) -> None:
    """Assign several fields of *model* at once, as its ``__setattr__`` would one by one.

    For models without ``validate_assignment`` (such as :class:`RouteInfo`) pydantic's
    ``__setattr__`` writes the instance dict and marks the field set; this does both for all
    *values* in one step (the executor sets four to eight of them on every request).
    """
    model.__dict__.update(values)
    model.__pydantic_fields_set__.update(values)


class RouteInfo(BaseModel):
    """How a response was produced: which model answered, every attempt, timings and cost.

    ``usage`` is the answer's token usage (a stream's summed over its attempts), there
    whether or not the caller asked a stream for its usage chunk.
    """

    route: str
    provider: str | None = None
    model: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    ttft_ms: float | None = None
    latency_ms: float | None = None
    estimated_cost_usd: float | None = None
    cost_usd: float | None = None
    usage: Usage | None = None
    dropped_params: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    resumed: bool = False
    resumed_by: str | None = None  # how a resumed stream continued: "prefill", "instruction"…
    usage_estimated: bool = False  # usage counted with the model's tokenizer, not reported
    decision: RouteDecision | None = None
    # The prompt count routing used for the model that answered, and what its server reported.
    prompt_tokens_estimated: int | None = None
    prompt_tokens_reported: int | None = None

    @property
    def fallbacks(self) -> int:
        """How many candidates were given up on (the one that answered, if any, not counted)."""
        failed = {a.model for a in self.attempts if a.outcome not in ("ok", "cancelled")}
        return len(failed - {self.model})


class ChatCompletion(_Wire):
    """A complete chat answer, shaped like OpenAI's, with ``route`` telling how it was made."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    route: RouteInfo | None = Field(default=None, exclude=True, repr=False)


class ChatCompletionChunk(_Wire):
    """One streamed piece of a chat answer, shaped like OpenAI's."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
