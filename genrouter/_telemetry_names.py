"""The attribute and instrument names genrouter emits, from the semantic-conventions package.

The names come from the installed semantic-conventions package (its ``_incubating`` GenAI
registry; 0.66b2 was current when this was written, matching GenAI conventions v1.3x and the
``semantic-conventions-genai`` repository they moved to). The package is imported only when a
request is actually traced or measured, once per process (5-10 ms); without it, the same names
are used from the table below (tests/test_observability.py checks that the two agree).
Names the conventions do not define are genrouter's own, under ``genrouter.*``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DURATION_BUCKETS",
    "TOKEN_BUCKETS",
    "Names",
    "load_names",
]

# Bucket advice from the GenAI metrics conventions (gen-ai-metrics.md): seconds for
# gen_ai.client.operation.duration and .time_to_first_chunk, tokens for gen_ai.client.token.usage.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)
DURATION_BUCKETS += (5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS: tuple[float, ...] = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144)
TOKEN_BUCKETS += (1048576, 4194304, 16777216, 67108864)


@dataclass(frozen=True, slots=True)
class Names:
    """Every convention name genrouter uses, one field per name."""

    operation_name: str = "gen_ai.operation.name"
    provider_name: str = "gen_ai.provider.name"
    request_model: str = "gen_ai.request.model"
    request_temperature: str = "gen_ai.request.temperature"
    request_top_p: str = "gen_ai.request.top_p"
    request_max_tokens: str = "gen_ai.request.max_tokens"
    request_seed: str = "gen_ai.request.seed"
    request_stop_sequences: str = "gen_ai.request.stop_sequences"
    request_frequency_penalty: str = "gen_ai.request.frequency_penalty"
    request_presence_penalty: str = "gen_ai.request.presence_penalty"
    request_choice_count: str = "gen_ai.request.choice.count"
    request_stream: str = "gen_ai.request.stream"
    response_model: str = "gen_ai.response.model"
    response_id: str = "gen_ai.response.id"
    response_finish_reasons: str = "gen_ai.response.finish_reasons"
    response_time_to_first_chunk: str = "gen_ai.response.time_to_first_chunk"
    usage_input_tokens: str = "gen_ai.usage.input_tokens"
    usage_output_tokens: str = "gen_ai.usage.output_tokens"
    usage_reasoning_output_tokens: str = "gen_ai.usage.reasoning.output_tokens"
    usage_cache_read_input_tokens: str = "gen_ai.usage.cache_read.input_tokens"
    token_type: str = "gen_ai.token.type"
    input_messages: str = "gen_ai.input.messages"
    output_messages: str = "gen_ai.output.messages"
    system_instructions: str = "gen_ai.system_instructions"
    server_address: str = "server.address"
    server_port: str = "server.port"
    error_type: str = "error.type"
    metric_duration: str = "gen_ai.client.operation.duration"
    metric_time_to_first_chunk: str = "gen_ai.client.operation.time_to_first_chunk"
    metric_token_usage: str = "gen_ai.client.token.usage"


def load_names() -> Names:
    """The names from the installed semantic-conventions package, else the built-in table."""
    try:
        from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
        from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as gm
        from opentelemetry.semconv.attributes import error_attributes as ea
        from opentelemetry.semconv.attributes import server_attributes as sa
    except ImportError:
        return Names()
    try:
        return Names(
            operation_name=ga.GEN_AI_OPERATION_NAME,
            provider_name=ga.GEN_AI_PROVIDER_NAME,
            request_model=ga.GEN_AI_REQUEST_MODEL,
            request_temperature=ga.GEN_AI_REQUEST_TEMPERATURE,
            request_top_p=ga.GEN_AI_REQUEST_TOP_P,
            request_max_tokens=ga.GEN_AI_REQUEST_MAX_TOKENS,
            request_seed=ga.GEN_AI_REQUEST_SEED,
            request_stop_sequences=ga.GEN_AI_REQUEST_STOP_SEQUENCES,
            request_frequency_penalty=ga.GEN_AI_REQUEST_FREQUENCY_PENALTY,
            request_presence_penalty=ga.GEN_AI_REQUEST_PRESENCE_PENALTY,
            request_choice_count=ga.GEN_AI_REQUEST_CHOICE_COUNT,
            request_stream=ga.GEN_AI_REQUEST_STREAM,
            response_model=ga.GEN_AI_RESPONSE_MODEL,
            response_id=ga.GEN_AI_RESPONSE_ID,
            response_finish_reasons=ga.GEN_AI_RESPONSE_FINISH_REASONS,
            response_time_to_first_chunk=ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
            usage_input_tokens=ga.GEN_AI_USAGE_INPUT_TOKENS,
            usage_output_tokens=ga.GEN_AI_USAGE_OUTPUT_TOKENS,
            usage_reasoning_output_tokens=ga.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
            usage_cache_read_input_tokens=ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
            token_type=ga.GEN_AI_TOKEN_TYPE,
            input_messages=ga.GEN_AI_INPUT_MESSAGES,
            output_messages=ga.GEN_AI_OUTPUT_MESSAGES,
            system_instructions=ga.GEN_AI_SYSTEM_INSTRUCTIONS,
            server_address=sa.SERVER_ADDRESS,
            server_port=sa.SERVER_PORT,
            error_type=ea.ERROR_TYPE,
            metric_duration=gm.GEN_AI_CLIENT_OPERATION_DURATION,
            metric_time_to_first_chunk=gm.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            metric_token_usage=gm.GEN_AI_CLIENT_TOKEN_USAGE,
        )
    except AttributeError:  # an older package without some name: the table is the same names
        return Names()
