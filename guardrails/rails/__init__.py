"""The rails: offline ones (patterns, checksums, YARA) and NeMo library flows.

See :mod:`.factory` for which configured flow selects which rail.
"""

from .base import OfflineRail
from .code import CodeInjectionRail
from .injection import PromptInjectionRail
from .pii import PersonalDataRail
from .secrets import SecretsRail
from .terms import DeniedTermsRail

__all__ = [
    "CodeInjectionRail",
    "DeniedTermsRail",
    "OfflineRail",
    "PersonalDataRail",
    "PromptInjectionRail",
    "SecretsRail",
]
