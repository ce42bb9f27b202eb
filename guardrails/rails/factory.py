"""Which configured flow selects which offline rail, and building those rails from a policy.

A policy's ``rails.input.flows`` / ``rails.output.flows`` name flows. The flows below are run by the
offline rails of this package (defined in Colang in each policy, so the policy also runs under
NeMo's ``LLMRails``); NeMo's own ``injection detection`` flow runs on :class:`CodeInjectionRail`,
the same rules compiled once. Any other flow is a NeMo library flow (:mod:`.library`).
"""

from __future__ import annotations

from pathlib import Path

from nemoguardrails import RailsConfig

from ..policy_settings import (
    ClassifierSettings,
    DeniedTermsSettings,
    GuardModelSettings,
    PersonalDataSettings,
    PolicySettings,
    PromptInjectionSettings,
    SecretsSettings,
)
from ..verdict import Direction
from .base import OfflineRail
from .classifier import ClassifierRail, LinearModel, ModelLoadError
from .code import CodeInjectionRail, compile_rules
from .guard_model import GuardModelError, GuardModelRail
from .harm import HarmfulRequestRail
from .injection import PromptInjectionRail
from .pii import PersonalDataRail
from .secrets import SecretsRail
from .terms import DeniedTermsRail
from .views import ViewsRail

# flow -> (rail, direction, defined by the policy's Colang)
OFFLINE_FLOWS: dict[str, tuple[str, Direction, bool]] = {
    "personal data input": ("personal_data", "input", True),
    "personal data output": ("personal_data", "output", True),
    "secrets input": ("secrets", "input", True),
    "secrets output": ("secrets", "output", True),
    "prompt injection input": ("prompt_injection", "input", True),
    "denied terms input": ("denied_terms", "input", True),
    "denied terms output": ("denied_terms", "output", True),
    "injection detection": ("code_injection", "output", False),
    "classifier input": ("classifier", "input", True),
    "guard model input": ("guard_model", "input", True),
    "harmful request input": ("harmful_request", "input", True),
}


def build_offline_rail(rail: str, settings: PolicySettings, config: RailsConfig, policy_dir: Path) -> OfflineRail:
    """Builds (and compiles) one offline rail of a policy; it checks the normalised views of a text
    (:mod:`guardrails.normalize`) as well as the text.

    Raises:
        ValueError: the rail's configuration is invalid.
    """
    built = _build(rail, settings, config, policy_dir)
    # The guard model reads the original only: it is a model of raw text, and costs a pass per view.
    return ViewsRail(built) if rail not in ("code_injection", "guard_model") else built


def _build(rail: str, settings: PolicySettings, config: RailsConfig, policy_dir: Path) -> OfflineRail:
    if rail == "personal_data":
        pii = settings.rail(rail)
        assert isinstance(pii, PersonalDataSettings)
        return PersonalDataRail(pii.entities)
    if rail == "secrets":
        secrets = settings.rail(rail)
        assert isinstance(secrets, SecretsSettings)
        return SecretsRail(secrets.action, secrets.generic)
    if rail == "prompt_injection":
        injection = settings.rail(rail)
        assert isinstance(injection, PromptInjectionSettings)
        return PromptInjectionRail(injection.threshold)
    if rail == "denied_terms":
        terms = settings.rail(rail)
        assert isinstance(terms, DeniedTermsSettings)
        return DeniedTermsRail(terms.topics, terms.action)
    if rail == "classifier":
        classifier = settings.rail(rail)
        assert isinstance(classifier, ClassifierSettings)
        try:
            model = LinearModel.load(classifier.model)
        except ModelLoadError as exc:
            raise ValueError(str(exc)) from None
        thresholds = {str(head): value for head, value in classifier.thresholds.items()}
        return ClassifierRail(model, thresholds=thresholds, blocked=classifier.block_categories)
    if rail == "harmful_request":
        return HarmfulRequestRail()
    if rail == "guard_model":
        guard = settings.rail(rail)
        assert isinstance(guard, GuardModelSettings)
        try:
            return GuardModelRail(guard.model, guard.labels, guard.threshold, guard.device, guard.max_length)
        except GuardModelError as exc:
            raise ValueError(str(exc)) from None
    if rail == "code_injection":
        section = config.rails.config.injection_detection
        if section is None or not section.injections:
            raise ValueError("flow 'injection detection' needs rails.config.injection_detection.injections")
        directory = None
        if section.yara_path:
            directory = Path(section.yara_path)
            directory = directory if directory.is_absolute() else policy_dir / directory
        rules = compile_rules(section.injections, section.yara_rules, directory)
        return CodeInjectionRail(rules, "block" if section.action == "reject" else "mask")
    raise ValueError(f"unknown offline rail {rail!r}")
