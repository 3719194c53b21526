"""The optional path through the official ``openai`` SDK (``use_sdk = true``).

Some deployments want the vendor's own client on the wire (its headers, its proxy and auth
plumbing). The SDK sends the request, on the client's shared ``httpx2.AsyncClient`` with
``max_retries=0`` (routing retries, once); genrouter still parses the bytes itself, through
``with_raw_response`` / ``with_streaming_response``, because building the SDK's objects costs
about 130 µs per streamed chunk. SDK exceptions are mapped to genrouter's tree ``from`` the
original's facts (status, request id, code) but never chained as they are: the SDK's exception
holds the request (its ``Authorization`` header) and the response body, where a server may echo
the key, so ``__cause__`` is a :class:`~genrouter.errors.RedactedCause` summary and
``__context__`` is empty. ``openai`` is imported only when this module is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from genrouter.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ResponseFormatError,
    detach,
    redact,
)
from genrouter.providers._errors_http import CONNECT_FAILED, error_from_transport

if TYPE_CHECKING:
    from genrouter.providers.base import ProviderCall
    from genrouter.providers.openai_compat import OpenAICompatibleProvider

__all__ = ["OpenAISDKTransport"]

# Headers the SDK sets itself from its own arguments; passing them twice would duplicate them.
_SDK_OWNED_HEADERS = frozenset(
    {"authorization", "content-type", "openai-organization", "openai-project"}
)


class OpenAISDKTransport:
    """Sends chat completion bodies through ``openai.AsyncOpenAI``; returns raw bytes/responses."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str,
        http: httpx2.AsyncClient,
        headers: Mapping[str, str],
    ) -> None:
        self.api_key = api_key
        # What the owning provider built this transport for (key and secret header values).
        self.stamp: tuple[str | None, ...] = (api_key,)
        extra = {k: v for k, v in headers.items() if k.lower() not in _SDK_OWNED_HEADERS}
        lowered = {k.lower(): v for k, v in headers.items()}
        self._client = openai.AsyncOpenAI(
            # The SDK insists on a key; a keyless compatible server ignores the placeholder.
            api_key=api_key or "not-needed",
            organization=lowered.get("openai-organization"),
            project=lowered.get("openai-project"),
            base_url=base_url,
            max_retries=0,
            http_client=http,
            default_headers=extra,
        )

    def __repr__(self) -> str:
        return f"OpenAISDKTransport(base_url={str(self._client.base_url)!r})"

    @staticmethod
    def _split(body: dict[str, Any]) -> tuple[str, Any, dict[str, Any]]:
        # Everything but model/messages/stream travels as extra_body, so vendor options the
        # SDK's signature does not know still reach the server unchanged.
        rest = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
        return body["model"], body["messages"], rest

    async def complete(
        self,
        provider: OpenAICompatibleProvider,
        call: ProviderCall,
        body: dict[str, Any],
        timeout: httpx2.Timeout,
    ) -> bytes:
        """Send a non-streamed request; return the response body."""
        model, messages, rest = self._split(body)
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                model=model,
                messages=messages,
                extra_body=rest,
                extra_headers=call.request.extra_headers,
                extra_query=call.request.extra_query,
                timeout=timeout,
            )
        except openai.OpenAIError as exc:
            failure = _mapped(exc, provider, call)
        else:
            content: bytes = raw.http_response.content
            return content
        raise failure  # outside the except: the SDK's exception must not become the context

    @asynccontextmanager
    async def open_stream(
        self,
        provider: OpenAICompatibleProvider,
        call: ProviderCall,
        body: dict[str, Any],
        timeout: httpx2.Timeout,
    ) -> AsyncIterator[httpx2.Response]:
        """Open a streamed request; yield the open HTTP response, closed on exit."""
        model, messages, rest = self._split(body)
        failure: ProviderError | None = None
        try:
            manager = self._client.chat.completions.with_streaming_response.create(
                model=model,
                messages=messages,
                stream=True,
                extra_body=rest,
                extra_headers=call.request.extra_headers,
                extra_query=call.request.extra_query,
                timeout=timeout,
            )
            response = await manager.__aenter__()
        except openai.OpenAIError as exc:
            failure = _mapped(exc, provider, call)
        if failure is not None:
            raise failure  # outside the except, as in complete()
        try:
            yield response.http_response
        finally:
            await manager.__aexit__(None, None, None)


def _mapped(
    exc: openai.OpenAIError, provider: OpenAICompatibleProvider, call: ProviderCall
) -> ProviderError:
    """The typed error for an SDK exception, with a redacted summary of it as the cause."""
    error = _classified(exc, provider, call)
    if error.request_id is None:
        request_id = getattr(exc, "request_id", None)
        error.request_id = request_id if isinstance(request_id, str) else None
    return detach(error, exc, provider._secrets())


def _classified(
    exc: openai.OpenAIError, provider: OpenAICompatibleProvider, call: ProviderCall
) -> ProviderError:
    error: ProviderError
    if isinstance(exc, openai.APIStatusError):
        response = exc.response
        error = provider.map_error(response.status_code, response.content, response.headers)
        if error.model is None:
            error.model = call.model.model
        return error
    where: dict[str, Any] = {"provider": provider.name, "model": call.model.model}
    # The SDK wraps httpx2's exception; classify by that original when it kept it.
    original = exc.__cause__ or exc.__context__
    if isinstance(original, httpx2.TransportError):
        error = error_from_transport(original, **where, secrets=provider._secrets())
    elif isinstance(exc, openai.APITimeoutError):
        error = ProviderTimeoutError("the request timed out", **where)
    elif isinstance(exc, openai.APIConnectionError):
        error = ProviderConnectionError("could not connect", code=CONNECT_FAILED, **where)
    elif isinstance(exc, openai.APIResponseValidationError):
        error = ResponseFormatError("the openai SDK could not read the response", **where)
    else:
        error = ProviderError(redact(str(exc), provider._secrets()), **where)
    return error
