"""The one error a prompt encoder raises for a conversation it cannot encode."""

from __future__ import annotations


class PromptError(ValueError):
    """The conversation cannot be encoded for this model (roles, order, tool call ids ...).

    The message is static text about the conversation's shape, safe to return to the client.
    """
