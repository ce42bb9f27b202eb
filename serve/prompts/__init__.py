"""Prompt encoding: OpenAI-style conversations (and tools) to prompt token ids.

Two formats: Mistral's own, through ``mistral-common`` (:mod:`serve.prompts.mistral`), where text in
a message is always text and control tokens only come from the format; and a Hugging Face chat
template for other models (:mod:`serve.prompts.hf`). The gateway and the moderation layer's NeMo
provider both encode through a :class:`serve.engine.api.PromptEncoder` that the app builder hands
them (:func:`serve.prompts.loader.load_prompt_encoder`).
"""
