"""Choosing and loading the prompt encoder of a served model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .hf import HFPromptEncoder
from .mistral import MistralPromptEncoder, find_tokenizer_file

PromptFormat = Literal["auto", "mistral", "hf"]


def resolve_prompt_format(source: str, configured: PromptFormat) -> Literal["mistral", "hf"]:
    """``auto``: Mistral's format for a checkpoint that ships a mistral-common tokenizer or a hub id
    of a Mistral model (``mistralai/...``, ``...mistral...``), else the HF chat template."""
    if configured != "auto":
        return configured
    if Path(source).is_dir():
        return "mistral" if find_tokenizer_file(source) is not None else "hf"
    return "mistral" if "mistral" in source.lower() else "hf"


def load_prompt_encoder(source: str, revision: str | None = None, prompt_format: PromptFormat = "auto"):
    """The prompt encoder of the model at ``source`` (a local checkpoint or a hub id).

    Args:
        source: ``from_pretrained`` argument of the served model.
        revision: Hub revision.
        prompt_format: ``mistral`` (mistral-common), ``hf`` (chat template) or ``auto``.

    Returns:
        A :class:`MistralPromptEncoder` or :class:`HFPromptEncoder`.
    """
    chosen = resolve_prompt_format(source, prompt_format)
    if chosen == "mistral":
        local = find_tokenizer_file(source) if Path(source).is_dir() else None
        if local is not None:
            return MistralPromptEncoder.from_file(local)
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        # The hub's cache (HF_HUB_OFFLINE=1 reads only the cache).
        return MistralPromptEncoder(MistralTokenizer.from_hf_hub(source, revision=revision))
    from ..engine.loader import load_tokenizer

    return HFPromptEncoder(load_tokenizer(source, revision))
