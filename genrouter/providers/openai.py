"""OpenAI's own API: the OpenAI wire path plus its key, base URL and organization headers.

The o-series rules (``developer`` role, ``max_completion_tokens``, no ``temperature``…) are
data in the catalog, applied by :meth:`OpenAICompatibleProvider.build_body`; this class only
knows where OpenAI lives and how it authenticates.
"""

from __future__ import annotations

from typing import ClassVar

from genrouter.providers._dialect import OPENAI, WireDialect
from genrouter.providers._errors_http import OPENAI_DIALECT, ErrorDialect
from genrouter.providers.openai_compat import OpenAICompatibleProvider

__all__ = ["OpenAIProvider"]


class OpenAIProvider(OpenAICompatibleProvider):
    """``api.openai.com`` (or an OpenAI proxy at ``base_url``), keyed by ``OPENAI_API_KEY``.

    ``organization`` and ``project`` from the configuration are sent as the
    ``OpenAI-Organization`` / ``OpenAI-Project`` headers. With ``use_sdk = true`` requests go
    through the official ``openai`` SDK instead of genrouter's own HTTP call.
    """

    kind: ClassVar[str] = "openai"
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    default_key_env: ClassVar[str | None] = "OPENAI_API_KEY"
    key_required: ClassVar[bool] = True
    dialect: ClassVar[WireDialect] = OPENAI
    error_dialect: ClassVar[ErrorDialect] = OPENAI_DIALECT

    def request_headers(self, key: str | None) -> dict[str, str]:
        """Bearer auth, organization and project headers, then the configured headers."""
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if self._config.organization:
            headers["OpenAI-Organization"] = self._config.organization
        if self._config.project:
            headers["OpenAI-Project"] = self._config.project
        headers.update(self.configured_headers())
        return headers
