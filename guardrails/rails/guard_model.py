"""The guard-model rail: a dedicated safety classifier (a transformers sequence classifier) on inputs.

For GPU clusters that can afford a second model: any checkpoint loadable with
``AutoModelForSequenceClassification`` (a prompt-injection or safety classifier), from a hub id or a
local directory, selected per policy (``guard model input`` flow, ``rails.guard_model`` settings).
Loading happens once, when the policy loads; with ``HF_HUB_OFFLINE=1`` nothing is downloaded and a
model missing from the local cache fails the policy load with the reason, never a request.

The model's labels map to moderation categories through the policy (``labels``); a label mapped to
``safe`` (or left out) never flags. Each label flags when its softmax probability reaches the
threshold. Runs synchronously like the other offline rails; on CPU it is milliseconds per input, so
the default policy does not use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..verdict import Finding, FindingAction


class GuardModelError(ValueError):
    """The guard model cannot be loaded; the message says why and what to do."""


class GuardModelRail:
    """Classifies inputs with a transformers sequence-classification model.

    Args:
        model: Hub id or local directory.
        labels: Model label -> moderation category (``safe`` or absent: never flags).
        threshold: Probability at which a mapped label flags.
        device: torch device.
        max_length: Tokens read (longer inputs keep their end, where instructions usually are).
        action: What a flagged input does.

    Raises:
        GuardModelError: the model or its tokenizer cannot be loaded (offline and not cached, no such
            directory, not a sequence classifier).
    """

    name = "guard_model"

    def __init__(self, model: str, labels: Mapping[str, str], threshold: float = 0.5, device: str = "cpu",
                 max_length: int = 512, action: FindingAction = "block") -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(model)
            self._model = AutoModelForSequenceClassification.from_pretrained(model).to(device).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise GuardModelError(
                f"guard model {model!r} cannot be loaded ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                "give a local directory, or put the model in the Hugging Face cache (HF_HOME) on this machine: "
                "with HF_HUB_OFFLINE=1 nothing is downloaded"
            ) from None
        self._tokenizer.truncation_side = "left"
        self._torch = torch
        self._device = device
        self._max_length = max_length
        self._threshold = threshold
        self._action: FindingAction = action
        id2label = self._model.config.id2label
        self._categories = {int(i): labels.get(str(name), "safe") for i, name in id2label.items()}

    def categories(self) -> Sequence[str]:
        """The categories the label map can produce."""
        return sorted({c for c in self._categories.values() if c != "safe"})

    def scan(self, text: str) -> list[Finding]:
        """One finding per mapped label at or above the threshold."""
        batch = self._tokenizer(text, return_tensors="pt", truncation=True, max_length=self._max_length)
        with self._torch.inference_mode():
            logits = self._model(**batch.to(self._device)).logits[0]
        probs = self._torch.softmax(logits.float(), dim=-1).tolist()
        return [
            Finding(self.name, category, f"label_{i}", self._action, score=round(p, 4))
            for i, p in enumerate(probs)
            if (category := self._categories.get(i, "safe")) != "safe" and p >= self._threshold
        ]
