"""What DashScope's compatible mode refuses in a request body, for the fake server.

Only rules seen from the real service are here: an assistant turn with ``tool_calls`` and no
``content`` key is answered ``400 InvalidParameter: Field required: input.messages.N.content``
(reported publicly against another SDK, agentscope-java#1270; see FACTS.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["dashscope_input_error"]


def dashscope_input_error(body: Any) -> dict[str, Any] | None:
    """DashScope's error body for a request it refuses, or ``None`` if it would take it."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return None
    for index, message in enumerate(messages):
        if isinstance(message, dict) and "content" not in message:
            text = f"Field required: input.messages.{index}.content"
            return {
                "error": {
                    "code": "InvalidParameter",
                    "param": None,
                    "message": text,
                    "type": "invalid_request_error",
                },
                "request_id": "5e1a0c1e-7b0e-9a5d-a1b2-c3d4e5f60718",
            }
    return None
