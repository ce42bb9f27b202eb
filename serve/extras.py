"""Optional dependencies: imported where they are used, and named with their extra when missing.

The serving image installs only the core dependencies. The local stack (``mistral-serve run``,
``keys``, ``usage``) needs the ``[local]`` extra, the operator CLI (``mistral-serve ops``) the
``[ops]`` extra and tracing the ``[otel]`` extra; a command that lacks its extra says which one to
install instead of failing with a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, extra: str) -> ModuleType:
    """Imports ``module``, which the ``extra`` extra of mistral-serve provides.

    Args:
        module: dotted module name, e.g. ``"kubernetes.client"``.
        extra: the extra that installs it, e.g. ``"ops"``.

    Returns:
        The imported module.

    Raises:
        MissingExtra: the module's distribution is not installed.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        # NOTE: only the optional package itself missing means "install the extra"; a module it
        # imports that is missing is a broken install and keeps its own error.
        if error.name is None or module.split(".")[0] != error.name.split(".")[0]:
            raise
        raise MissingExtra(
            f"{error.name} is not installed: it comes with the [{extra}] extra "
            f"(pip install 'mistral-serve[{extra}]')"
        ) from error
