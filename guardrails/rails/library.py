"""NeMo Guardrails library flows (self check input/output, regex, jailbreak detection ...).

Each configured flow is compiled once into NeMo's own executable rail (``compile_rail``, the
manifest-driven path IORails uses): the library action is resolved, its parameters planned, and a
request is then one ``await action(...)`` instead of a Colang run. Flows that would download model
weights at request time are refused when the policy loads, with the reason and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nemoguardrails import RailsConfig
from nemoguardrails.actions.rail_outcome import RailOutcome
from nemoguardrails.guardrails.compiled_rail import (
    CompiledRail,
    RailCompilationError,
    RailDependencies,
    compile_rail,
)
from nemoguardrails.llm.taskmanager import LLMTaskManager
from nemoguardrails.manifests import RailDirection, parse_configured_surface

from ..verdict import Direction

JAILBREAK_HEURISTICS = "jailbreak detection heuristics"
JAILBREAK_MODEL = "jailbreak detection model"
# NeMo's in-process jailbreak heuristics load this model at import (heuristics/checks.py).
JAILBREAK_HEURISTICS_MODEL = "gpt2-large"

# Moderation categories of library rails; others report their rail name.
_CATEGORIES = {"self check input": "self-check", "self check output": "self-check"}
# Flows whose prompts the policy must provide (NeMo ships none for them).
_PROMPT_TASKS = {"self check input": "self_check_input", "self check output": "self_check_output"}


class LibraryRailError(ValueError):
    """A library flow cannot run as configured; the message says why and what to do."""


def rail_name(flow: str) -> str:
    """The rail name of a library flow: its surface name in snake case (``self_check_input``)."""
    surface, _ = parse_configured_surface(flow)
    return surface.replace(" ", "_")


def _hub_model_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id=repo_id, filename="config.json"), str)


def _check_no_downloads(surface: str, config: RailsConfig) -> None:
    """Refuses jailbreak detection configured to fetch weights from the hub at request time."""
    section = config.rails.config.jailbreak_detection
    remote = section is not None and (section.server_endpoint or section.nim_base_url)
    if surface == JAILBREAK_HEURISTICS and not remote:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        if not (offline and _hub_model_cached(JAILBREAK_HEURISTICS_MODEL)):
            raise LibraryRailError(
                f"flow {JAILBREAK_HEURISTICS!r} runs in-process by default, and NeMo then downloads "
                f"{JAILBREAK_HEURISTICS_MODEL} from the Hugging Face hub on first use; no hub download may "
                "happen at request time. Set rails.config.jailbreak_detection.server_endpoint to a NeMo "
                f"jailbreak detection server, or cache {JAILBREAK_HEURISTICS_MODEL} locally (HF_HOME) and run "
                "with HF_HUB_OFFLINE=1, or remove the flow (the prompt_injection rail works offline)."
            )
    if surface == JAILBREAK_MODEL and not remote:
        raise LibraryRailError(
            f"flow {JAILBREAK_MODEL!r} runs in-process by default and then downloads a classifier and an "
            "embedding model from the hub; set rails.config.jailbreak_detection.server_endpoint or "
            "nim_base_url, or remove the flow."
        )


@dataclass
class LibraryRail:
    """One NeMo library flow, compiled once, run by calling its action.

    Attributes:
        name: Rail name (``self_check_input``).
        flow: The configured flow string (``self check input``).
        direction: ``input`` or ``output``.
        category: Moderation category it flags.
        needs_llm: Whether the action calls a model (the policy's ``models``).
    """

    name: str
    flow: str
    direction: Direction
    category: str
    needs_llm: bool
    _compiled: CompiledRail | None
    _direct: Any = None  # an action NeMo's compiler refuses but which runs fine when called

    def bind(self, llms: Mapping[str, Any]) -> LibraryRail:
        """The same rail with its runtime models (``{"main": LLMModel, ...}``) in place."""
        if self._compiled is None:
            return self
        deps = self._compiled._deps
        bound = self._compiled.with_runtime_dependencies(
            RailDependencies(llms=dict(llms), llm_task_manager=deps.llm_task_manager, config=deps.config)
        )
        return LibraryRail(self.name, self.flow, self.direction, self.category, self.needs_llm, bound, self._direct)

    async def check(self, text: str, context: str | None = None) -> RailOutcome:
        """Runs the action on ``text`` (``context``: the user turn an output answers).

        Returns NeMo's outcome; a raising action comes back as a ``failed`` block, or raises when
        the failure carries an upstream HTTP status.
        """
        if self._direct is not None:
            return await self._direct(text)
        assert self._compiled is not None
        if self.direction == "input":
            return await self._compiled.run([{"role": "user", "content": text}])
        return await self._compiled.run([{"role": "user", "content": context or ""}], bot_response=text)


def compile_library_rail(
    flow: str, direction: Direction, config: RailsConfig, task_manager: LLMTaskManager
) -> LibraryRail:
    """Compiles one library flow of a policy, before any model exists.

    Raises:
        LibraryRailError: unknown flow, wrong direction, missing prompt, model, dependency, or a
            configuration that would download weights at request time.
    """
    surface, _ = parse_configured_surface(flow)
    _check_no_downloads(surface, config)
    task = _PROMPT_TASKS.get(surface)
    if task is not None and not any(p.task == task for p in config.prompts or []):
        raise LibraryRailError(f"flow {flow!r} needs a prompt for task {task!r} in the policy's prompts")
    model_types = {m.type for m in config.models if m.type not in ("embeddings", "jailbreak_detection")}
    deps = RailDependencies(llms={t: None for t in model_types}, llm_task_manager=task_manager, config=config)
    name, category = rail_name(flow), _CATEGORIES.get(surface, rail_name(flow))
    if surface == JAILBREAK_HEURISTICS:
        return LibraryRail(name, flow, direction, category, False, None, _jailbreak_heuristics(task_manager))
    try:
        compiled = compile_rail(flow, RailDirection(direction), deps)
    except RailCompilationError as exc:
        raise LibraryRailError(str(exc)) from None
    needs_llm = bool({"llm", "llms"} & compiled._accepted)
    if needs_llm and "main" not in model_types:
        raise LibraryRailError(f"flow {flow!r} calls a model, but the policy defines no `main` model")
    return LibraryRail(name, flow, direction, category, needs_llm, compiled)


def _jailbreak_heuristics(task_manager: LLMTaskManager):
    """NeMo's jailbreak heuristics action, called directly (its compiler entry is blocklisted)."""
    from nemoguardrails.library.jailbreak_detection.actions import jailbreak_detection_heuristics

    async def run(text: str) -> RailOutcome:
        return await jailbreak_detection_heuristics(llm_task_manager=task_manager, user_message=text)

    return run
