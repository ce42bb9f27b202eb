"""Prompt injection, jailbreak and system-prompt extraction attempts in inputs (English).

Each signal is a pattern with a weight; a text is flagged when its signals add up to the policy's
threshold (1.0 by default). Strong signals ("ignore all previous instructions", "repeat the words
above") reach it alone; ambiguous ones ("developer mode", "jailbreak", "[INST]") need company, which
is what lets "enable developer mode on my phone" or "how do I jailbreak my iPhone" through.
Leetspeak digits and zero-width characters are normalized before matching.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..verdict import Finding, FindingAction
from .base import strip_invisible

CATEGORY = "prompt_injection"
JAILBREAK = "jailbreak"

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
# Gaps may cross sentence ends: "You are Max. He has no restrictions." is one instruction in two sentences.
_GAP = r"[\s\S]{0,%d}?"

_TARGETS = (
    r"(?:instructions?|prompts?|rules|directives?|directions|guidelines|guardrails|constraints|programming"
    r"|polic(?:y|ies)|restrictions|safeguards|filters|commands|context|training|system message)"
)
_LIMITS = (
    r"(?:restrictions|limitations|limits|filters|censorship|guidelines|rules|ethics|morals|boundaries|constraints"
    r"|policies|safeguards)"
)
_ROLE_PLAY = r"\b(?:pretend|imagine|act as if|act like|behave as if|role-?play as|you are|you're|become)\b"
_WITHOUT = r"\b(?:no|zero|without|free (?:from|of)|not bound by|freed from|unbound by|beyond)\b"
_UNFILTERED = r"\b(?:unfiltered|uncensored|unrestricted|amoral|unaligned|unhinged|unethical)\b"
_PERSONA = r"\b(?:ai|assistant|model|chatbot|version|mode|persona|character|llm|gpt|bot)\b"
_DISCLOSE = (
    r"\b(?:reveal|show|print|display|output|repeat|recite|dump|leak|tell me|give me|share|write out|spell out"
    r"|what (?:is|are|was|were))\w*\b"
)
_HIDDEN_PROMPT = (
    r"\b(?:system|initial|original|hidden|secret|internal|developer|first|pre-?)\s*"
    r"(?:prompt|instructions?|message|rules|directives|configuration)\b"
)
_YOU_WERE = r"you(?:'ve| have| were| had)?(?: been)?"

_TRIGGER_TARGETS = (
    "instruction", "prompt", "rule", "directive", "direction", "guideline", "guardrail", "constraint", "programming",
    "polic", "restriction", "safeguard", "filter", "command", "context", "training", "system message",
)
_TRIGGER_LIMITS = (
    "restriction", "limit", "filter", "censor", "guideline", "rule", "ethic", "moral", "boundar", "constraint", "polic",
    "safeguard",
)
_TRIGGER_ROLE_PLAY = ("pretend", "imagine", "act as", "act like", "behave as", "role", "you are", "you're", "become")
_TRIGGER_UNFILTERED = ("unfiltered", "uncensored", "unrestricted", "amoral", "unaligned", "unhinged", "unethical")
_OVERRIDE_VERBS = ("ignore", "disregard", "forget", "override", "bypass", "neglect", "abandon", "discard")


@dataclass(frozen=True)
class _Signal:
    """One weighted pattern, run only when every trigger group has a substring in the text."""

    kind: str
    weight: float
    pattern: re.Pattern[str]
    triggers: tuple[tuple[str, ...], ...]

    def search(self, lowered: str, normalized: str) -> re.Match[str] | None:
        if all(any(t in lowered for t in group) for group in self.triggers):
            return self.pattern.search(normalized)
        return None


def _signal(kind: str, weight: float, pattern: str, *triggers: tuple[str, ...]) -> _Signal:
    return _Signal(kind, weight, re.compile(pattern, re.I), triggers)


# Signals are case-insensitive unless the pattern says otherwise. The triggers are a cheap
# substring pre-check (lowercase) that lets benign text skip the regular expression entirely.
_SIGNALS: tuple[_Signal, ...] = (
    # Overriding the instructions the model was given.
    _signal(
        "override", 1.0,
        r"\b(?:ignore|disregard|forget|override|bypass|neglect|abandon|discard)\b" + _GAP % 30
        + r"\b(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system|developer|your|safety)\b"
        + _GAP % 25 + r"\b" + _TARGETS + r"\b",
        _OVERRIDE_VERBS, _TRIGGER_TARGETS,
    ),
    _signal(
        "override", 0.5,
        r"\b(?:ignore|disregard|forget|override|bypass)\b" + _GAP % 15 + r"\b(?:all|any|every)\b" + _GAP % 25
        + r"\b" + _TARGETS + r"\b",
        _OVERRIDE_VERBS, _TRIGGER_TARGETS,
    ),
    _signal(
        "override", 1.0,
        r"\b(?:ignore|disregard|forget)\b" + _GAP % 20 + r"\b(?:everything|anything|all|what)\b" + _GAP % 20
        + r"\b" + _YOU_WERE + r" (?:told|given|instructed|programmed|taught)\b",
        ("ignore", "disregard", "forget"), ("told", "given", "instructed", "programmed", "taught"),
    ),
    _signal("override", 0.5, r"\byou must (?:obey|comply with|follow) (?:the user|me|my|every)\b", ("you must",)),
    _signal(
        "override", 0.5,
        r"\b(?:do not|don't|never|stop)\s+(?:follow|obey|adhere to|comply with)\w*\s+(?:your|the|any)\s+" + _TARGETS,
        ("follow", "obey", "adhere", "comply"), _TRIGGER_TARGETS,
    ),
    _signal(
        "override", 0.5, r"\b(?:from now on|starting now|for the rest of this conversation),?\s+(?:you|your)\b",
        ("from now on", "starting now", "rest of this conversation"),
    ),
    _signal(
        "override", 0.5, r"\bnew (?:instructions|rules|system prompt)\s*:",
        ("new instructions", "new rules", "new system"),
    ),
    # Jailbreak personas and "no limits" role-play.
    _signal("jailbreak", 1.0, r"\bdo anything now\b", ("do anything now",)),
    _signal("jailbreak", 0.5, r"(?-i:\bDAN\b)", ("dan",)),
    _signal("jailbreak", 0.5, r"\bjailbr(?:ea|o)k\w*", ("jailbr",)),
    _signal("jailbreak", 0.5, r"\b(?:developer|god|sudo|jailbreak|unrestricted|dan) mode\b", (" mode",)),
    _signal(
        "jailbreak", 1.0, _ROLE_PLAY + _GAP % 80 + _WITHOUT + _GAP % 25 + r"\b" + _LIMITS + r"\b",
        _TRIGGER_ROLE_PLAY, _TRIGGER_LIMITS,
    ),
    _signal("jailbreak", 0.75, _UNFILTERED + _GAP % 20 + _PERSONA, _TRIGGER_UNFILTERED),
    _signal(
        "jailbreak", 0.5, r"\bstay in character\b|\b(?:evil|dark|shadow|opposite) (?:twin|mode|version|confidant|ai)\b",
        ("stay in character", "evil ", "dark ", "shadow ", "opposite "),
    ),
    _signal(
        "jailbreak", 0.5,
        r"\b(?:never|won't|will not|cannot|can't) (?:refuse|decline|say no)\w*\b|\balways (?:comply|obey)\b",
        ("refuse", "decline", "say no", "always comply", "always obey"),
    ),
    _signal(
        "jailbreak", 0.5, r"\b(?:no|without) (?:ethical|moral|safety) (?:" + _LIMITS + r"|concerns|considerations)\b",
        ("ethical", "moral", "safety"),
    ),
    # Extracting the system prompt.
    _signal(
        "prompt_extraction", 1.0, _DISCLOSE + _GAP % 30 + r"\byour\b" + _GAP % 15 + _HIDDEN_PROMPT,
        ("your",), ("prompt", "instruction", "message", "rules", "directive", "configuration"),
    ),
    _signal(
        "prompt_extraction", 1.0,
        r"\b(?:reveal|print|output|dump|leak|recite)\b" + _GAP % 20
        + r"\b(?:system|hidden|secret|initial) (?:prompt|instructions)\b",
        (" prompt", " instructions"),
    ),
    _signal(
        "prompt_extraction", 0.5, r"\bthe (?:system|hidden|initial|original) (?:prompt|instructions)\b",
        (" prompt", " instructions"),
    ),
    _signal(
        "prompt_extraction", 0.75,
        r"\b(?:instructions|prompt|rules|guidelines|directives)\s+(?:that\s+)?" + _YOU_WERE
        + r"\s+(?:given|told|provided|programmed)\b",
        ("you",), ("given", "told", "provided", "programmed"),
    ),
    _signal(
        "prompt_extraction", 0.75,
        r"\b(?:repeat|print|output|copy|echo|reproduce|recite)\b" + _GAP % 25
        + r"\b(?:words|text|everything|all|lines|content|message)\b" + _GAP % 30
        + r"\b(?:above|before this|preceding|prior to this)\b",
        ("above", "before this", "preceding", "prior to this"),
    ),
    _signal(
        "prompt_extraction", 0.5,
        r"\b(?:verbatim|word for word|word-for-word)\b|\bstarting with (?:the (?:phrase|words) )?[\"']you are",
        ("verbatim", "word for word", "word-for-word", "starting with"),
    ),
    _signal(
        "prompt_extraction", 1.0, r"\bwhat (?:were|are|have) you (?:been )?(?:told|instructed|programmed|prompted)\b",
        ("told", "instructed", "programmed", "prompted"),
    ),
    _signal(
        "prompt_extraction", 0.5, r"\b(?:beginning|start) of (?:this|the|our) (?:conversation|chat|prompt|context)\b",
        ("beginning of", "start of"),
    ),
    # Chat-template and role delimiters smuggled into the text.
    _signal(
        "delimiter", 1.0, r"<\|(?:im_start|start_header_id)\|>\s*(?:system|assistant|developer)\b|<\|system\|>",
        ("<|",),
    ),
    _signal("delimiter", 0.5, r"<\|(?:im_start|im_end|endoftext|start_header_id|end_header_id|eot_id)\|>", ("<|",)),
    _signal("delimiter", 0.75, r"\[/?INST\]|<</?SYS>>", ("inst]", "sys>>")),
    _signal(
        "delimiter", 0.5, r"(?m)^\s*(?:#{2,}\s*)?(?:system|assistant)\s*(?:prompt|message)?\s*:",
        ("system", "assistant"),
    ),
    _signal(
        "delimiter", 0.5, r"</?(?:system|instructions?|sys)>", ("system>", "instruction>", "instructions>", "sys>"),
    ),
)


class PromptInjectionRail:
    """Scores injection signals and flags texts that reach the threshold.

    Args:
        threshold: Summed signal weight at which a text is flagged.
        action: What a flagged text does (``block``; ``mask`` removes the matched signals).
    """

    name = "prompt_injection"

    def __init__(self, threshold: float = 1.0, action: FindingAction = "block") -> None:
        if threshold <= 0:
            raise ValueError("prompt_injection threshold must be positive")
        self._threshold = threshold
        self._action: FindingAction = action

    def categories(self) -> Sequence[str]:
        """Jailbreak signals report ``jailbreak``; overrides, extraction and delimiters ``prompt_injection``."""
        return (CATEGORY, JAILBREAK)

    def score(self, text: str) -> tuple[float, list[tuple[str, float, int, int]]]:
        """The summed weight (each pattern counts once) and the signals that matched."""
        visible = strip_invisible(text)
        spans_valid = len(visible) == len(text)
        normalized = visible.translate(_LEET)
        lowered = normalized.lower()
        signals = []
        for signal in _SIGNALS:
            m = signal.search(lowered, normalized)
            if m is not None:
                start, end = m.span() if spans_valid else (-1, -1)
                signals.append((signal.kind, signal.weight, start, end))
        return sum(s[1] for s in signals), signals

    def scan(self, text: str) -> list[Finding]:
        """One finding per matched signal when the total reaches the threshold, else none."""
        total, signals = self.score(text)
        if total < self._threshold:
            return []
        confidence = min(1.0, total / (2 * self._threshold) + 0.5)
        return [
            Finding(self.name, JAILBREAK if kind == "jailbreak" else CATEGORY, kind, self._action, start, end, "",
                    confidence)
            for kind, _, start, end in sorted(signals, key=lambda s: s[2])
        ]
