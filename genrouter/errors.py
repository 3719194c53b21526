"""Every exception genrouter raises, in one tree.

::

    GenRouterError
    ├── ConfigError                       bad configuration; ``location`` names the field
    ├── InvalidRequestError               the request itself is malformed; never retried
    │   └── UnsupportedInputError         a part the chosen model cannot take (e.g. an image)
    ├── MediaError                        an image or video part could not be read or is unfit
    ├── NoCandidateError                  every candidate was excluded before sending
    ├── BudgetExceededError               the client's spending limit leaves no candidate
    ├── ProviderError                     a provider refused or failed (provider, model, status…)
    │   ├── AuthenticationError           401 / invalid key (also a key for the wrong region)
    │   ├── PermissionDeniedError         403
    │   ├── BillingError                  the account cannot pay (DashScope ``Arrearage``)
    │   ├── NotFoundError                 404 / unknown model
    │   ├── BadRequestError               400 the provider rejected for this model
    │   │   └── ContextWindowExceededError
    │   ├── ContentFilteredError          the provider's content filter stopped the request
    │   ├── RateLimitError                429; ``retry_after`` in seconds when the server said
    │   ├── ProviderTimeoutError          no answer in time
    │   │   ├── FirstTokenTimeoutError    a stream produced no content within first_token_timeout
    │   │   ├── AttemptTimeoutError       one attempt ran past its per-attempt timeout
    │   │   ├── StreamIdleTimeoutError    a stream went silent longer than its idle timeout
    │   │   └── DeadlineExceededError     the request's own deadline passed (not the model's fault)
    │   ├── ProviderConnectionError       refused, DNS, unreachable: the network may be down
    │   ├── ServerError                   5xx / service unavailable
    │   ├── ResponseFormatError           malformed JSON or SSE from the provider
    │   └── LocalModelError               a local model could not load or run
    │       ├── ModelFileError            missing, unreadable or not a GGUF file
    │       └── InsufficientMemoryError   not enough memory to load the model
    ├── StreamInterruptedError            a stream broke after text reached the caller
    └── AllCandidatesFailedError          every attempt failed (also an ``ExceptionGroup``)

Every provider error keeps the vendor exception as ``__cause__``. No message, ``repr`` or
attribute of these errors holds an API key: text that came from a provider passes through
:func:`redact` with the keys the provider knows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genrouter.types import RouteInfo

__all__ = [
    "AllCandidatesFailedError",
    "AttemptTimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BillingError",
    "BudgetExceededError",
    "ConfigError",
    "ContentFilteredError",
    "ContextWindowExceededError",
    "DeadlineExceededError",
    "FirstTokenTimeoutError",
    "GenRouterError",
    "InsufficientMemoryError",
    "InvalidRequestError",
    "LocalModelError",
    "MediaError",
    "ModelFileError",
    "NoCandidateError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "StreamIdleTimeoutError",
    "StreamInterruptedError",
    "UnsupportedInputError",
    "redact",
]

# Shapes of keys that vendors echo back in error bodies (OpenAI ``sk-…``, DashScope ``sk-…``,
# bearer tokens). Anything matching is masked even when the exact key is unknown.
_KEY_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+[A-Za-z0-9_\-.=]{8,})")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return *text* with every known secret and every key-shaped token masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _KEY_SHAPES.sub("***", text)


class GenRouterError(Exception):
    """Root of every error genrouter raises."""


class ConfigError(GenRouterError):
    """The configuration is invalid. ``location`` is the dotted path of the bad field."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class InvalidRequestError(GenRouterError):
    """The request is malformed: no model could accept it, so it is never retried."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        self.param = param
        super().__init__(f"{param}: {message}" if param else message)


class UnsupportedInputError(InvalidRequestError):
    """The request carries input (an image, video, tools…) that the chosen model cannot take."""


class MediaError(GenRouterError):
    """An image or video part could not be used: missing file, unknown type or too large."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(message)


class NoCandidateError(GenRouterError):
    """Routing excluded every candidate before anything was sent.

    ``decision`` is the :class:`~genrouter.routing.RouteDecision` that says why each was excluded.
    """

    def __init__(self, message: str, *, decision: Any = None) -> None:
        self.decision = decision
        super().__init__(message)


class BudgetExceededError(GenRouterError):
    """The client's spending limit leaves no candidate that fits."""

    def __init__(self, message: str, *, limit_usd: float, spent_usd: float) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        super().__init__(message)


class ProviderError(GenRouterError):
    """A provider failed or refused the request.

    Attributes name where it happened: ``provider`` (the configured provider name), ``model``
    (the vendor model id), ``status_code`` (HTTP status, if any), ``code`` (the vendor's error
    code, e.g. ``context_length_exceeded`` or ``Throttling.RateQuota``) and ``request_id``.
    ``retry_after`` is the wait in seconds the server asked for (``Retry-After`` on a 429 or
    a 503), if it did.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.retry_after = retry_after
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        super().__init__(message)

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        facts = [f"status {self.status_code}"] if self.status_code is not None else []
        if self.code:
            facts.append(f"code {self.code}")
        if self.request_id:
            facts.append(f"request id {self.request_id}")
        tail = f" ({', '.join(facts)})" if facts else ""
        return f"{where}: {self.message}{tail}" if where else f"{self.message}{tail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (HTTP 401, DashScope ``InvalidApiKey``)."""


class PermissionDeniedError(ProviderError):
    """The credentials are valid but not allowed to do this (HTTP 403)."""


class BillingError(ProviderError):
    """The account cannot pay for the request (DashScope ``Arrearage``)."""


class NotFoundError(ProviderError):
    """The model or endpoint does not exist for these credentials (HTTP 404)."""


class BadRequestError(ProviderError):
    """The provider rejected the request as invalid for this model (HTTP 400/422)."""


class ContextWindowExceededError(BadRequestError):
    """The prompt plus the requested output does not fit the model's context window."""


class ContentFilteredError(ProviderError):
    """The provider's content filter refused the input or stopped the output."""


class RateLimitError(ProviderError):
    """Too many requests (HTTP 429). ``retry_after`` is the server's wait in seconds, if given."""


class ProviderTimeoutError(ProviderError):
    """The provider did not answer in time."""


class FirstTokenTimeoutError(ProviderTimeoutError):
    """A stream produced no content within the first-token timeout."""


class AttemptTimeoutError(ProviderTimeoutError):
    """One attempt ran past its per-attempt timeout (the route's ``attempt_timeout_s`` or the
    provider's ``timeout_s``): a non-streamed answer, or a stream's wait for its first token."""


class StreamIdleTimeoutError(ProviderTimeoutError):
    """A stream sent nothing for longer than its idle timeout (``stream_idle_timeout_s``)."""


class DeadlineExceededError(ProviderTimeoutError):
    """The request's overall deadline (``timeout=``, ``deadline_s``) passed during an attempt.

    It is the caller's limit, not the model's failure: it never counts against the model's
    health.
    """


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (refused, DNS failure, unreachable, reset)."""


class ServerError(ProviderError):
    """The provider failed on its side (HTTP 5xx, service unavailable, ``InternalError``)."""


class ResponseFormatError(ProviderError):
    """The provider answered with something that is not valid JSON or SSE."""


class LocalModelError(ProviderError):
    """A local model could not be loaded or run."""

    def __init__(self, message: str, *, path: str | None = None, **where: Any) -> None:
        self.path = path
        super().__init__(message, **where)


class ModelFileError(LocalModelError):
    """A local model file is missing, unreadable or not a GGUF file."""


class InsufficientMemoryError(LocalModelError):
    """There is not enough memory to load a local model."""


class StreamInterruptedError(GenRouterError):
    """A stream broke after content had reached the caller.

    ``partial_text`` is exactly what the caller received, ``route`` the route so far, and the
    original failure is ``__cause__``. Retrying silently here would duplicate or lose text, so
    genrouter raises instead (or resumes, when the caller asked for ``resume=True``).
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str,
        partial_reasoning: str = "",
        route: RouteInfo | None = None,
    ) -> None:
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning
        self.route = route
        super().__init__(message)


class AllCandidatesFailedError(ExceptionGroup[Exception], GenRouterError):
    """Every attempt on every candidate failed.

    It is an ``ExceptionGroup`` of each attempt's error (``except*`` works on it), and ``route``
    holds the :class:`~genrouter.types.RouteInfo` with every attempt's outcome.
    """

    route: RouteInfo | None

    def __new__(
        cls, message: str, errors: Sequence[Exception], *, route: RouteInfo | None = None
    ) -> AllCandidatesFailedError:
        return super().__new__(cls, message, list(errors))

    def __init__(
        self, message: str, errors: Sequence[Exception], *, route: RouteInfo | None = None
    ) -> None:
        super().__init__(message, list(errors))
        self.route = route

    def derive(self, excs: Sequence[Exception]) -> AllCandidatesFailedError:  # type: ignore[override]
        return AllCandidatesFailedError(self.message, excs, route=self.route)
