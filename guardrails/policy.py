"""Policies: NeMo Guardrails config directories under ``guardrails/policies/<name>/``.

A policy is loaded, validated and compiled once, at startup: its ``config.yml`` (plus any other
``*.yml``, ``*.co`` and prompts) is parsed by NeMo's ``RailsConfig``, and the Colang flows every
policy shares (:data:`SHARED_COLANG`) are added to it; every configured flow must map to
a rail that can run here; offline rails compile their patterns and YARA rules; library flows are
compiled by NeMo. Anything wrong raises :class:`PolicyError` naming the policy and the problem, so a
broken policy stops startup and never fails a request.

Each policy has a version: a hash of its files, of the shared flows and of :data:`RAILS_REVISION`, which the prompt cache
puts in its key so that changing a policy never serves answers moderated under the old one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemoguardrails import RailsConfig
from nemoguardrails.llm.taskmanager import LLMTaskManager
from pydantic import ValidationError

from .policy_settings import PolicySettings, RailSettings, StreamSettings
from .rails.base import OfflineRail
from .rails.factory import OFFLINE_FLOWS, build_offline_rail
from .rails.library import LibraryRail, LibraryRailError, compile_library_rail
from .verdict import Direction

# Bump when a rail's behaviour changes, so policy versions (and cache keys) change with it.
RAILS_REVISION = "1"
SETTINGS_KEY = "mistral_serve"
PACKAGED_POLICIES = Path(__file__).parent / "policies"
# The Colang flows of mistral-serve's offline rails, written once for every policy.
SHARED_COLANG = Path(__file__).parent / "colang" / "rails.co"


class PolicyError(ValueError):
    """A policy cannot be loaded; the message names the policy and what is wrong."""


class UnknownPolicyError(KeyError):
    """A request named a policy that is not loaded."""


@dataclass(frozen=True)
class RailSpec:
    """One configured rail of a policy, ready to run.

    Attributes:
        name: Rail name (``personal_data``, ``self_check_input`` ...).
        flow: The configured flow that selected it.
        direction: ``input`` or ``output``.
        settings: Its validated settings (``on_error``, ``timeout_s`` and rail-specific ones).
        offline: The compiled offline rail, or None for a library rail.
        library: The compiled NeMo library rail, or None for an offline rail.
    """

    name: str
    flow: str
    direction: Direction
    settings: RailSettings
    offline: OfflineRail | None = None
    library: LibraryRail | None = None


@dataclass(frozen=True)
class PolicyInfo:
    """What the gateway needs to know about a policy (small and picklable).

    Attributes:
        name: Policy name.
        version: Content hash; part of the prompt cache key.
        system_prompt: The guardrail system prompt to prepend to chat requests, or None.
        stream: Window settings for output rails on streams.
    """

    name: str
    version: str
    system_prompt: str | None
    stream: StreamSettings


@dataclass(frozen=True)
class Policy:
    """A loaded policy.

    Attributes:
        name: Directory name.
        version: Content hash (see :func:`policy_version`).
        path: The policy directory.
        config: NeMo's parsed config.
        settings: The ``custom_data.mistral_serve`` section.
        input_rails: Input rails in configured order.
        output_rails: Output rails in configured order.
    """

    name: str
    version: str
    path: Path
    config: RailsConfig
    settings: PolicySettings
    input_rails: tuple[RailSpec, ...]
    output_rails: tuple[RailSpec, ...]

    @property
    def system_prompt(self) -> str | None:
        """The guardrail system prompt when the policy switches it on, else None."""
        return self.settings.system_prompt_text if self.settings.guardrail_system_prompt else None

    @property
    def stream(self) -> StreamSettings:
        """Window settings for output rails on streams."""
        return self.settings.stream

    @property
    def needs_llm(self) -> bool:
        """Whether any rail calls a model."""
        return any(r.library is not None and r.library.needs_llm for r in self.input_rails + self.output_rails)

    def rails(self, direction: Direction) -> tuple[RailSpec, ...]:
        """The rails of one direction, in configured order."""
        return self.input_rails if direction == "input" else self.output_rails

    def categories(self, direction: Direction) -> list[str]:
        """The moderation categories the rails of one direction can flag."""
        names: set[str] = set()
        for spec in self.rails(direction):
            if spec.offline is not None:
                names.update(spec.offline.categories())
            elif spec.library is not None:
                names.add(spec.library.category)
        return sorted(names)

    def info(self) -> PolicyInfo:
        """The picklable summary the gateway uses."""
        return PolicyInfo(self.name, self.version, self.system_prompt, self.stream)


def policy_version(path: Path) -> str:
    """Hash of every file of a policy directory (names and contents), of the shared flows and of
    the rails revision."""
    digest = hashlib.sha256(f"rails-revision:{RAILS_REVISION}\0".encode())
    digest.update(b"shared:" + SHARED_COLANG.read_bytes() + b"\0")
    for file in sorted(p for p in path.rglob("*") if p.is_file() and not _ignored(p.relative_to(path))):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _ignored(relative: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in relative.parts)


def _describe(exc: ValidationError) -> str:
    """A pydantic error in one line per problem, without links."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())


def _settings_of(name: str, settings: PolicySettings, rail: str) -> RailSettings:
    try:
        return settings.rail(rail)
    except ValidationError as exc:
        where = f"custom_data.{SETTINGS_KEY}.rails.{rail}"
        raise PolicyError(f"policy {name!r}: invalid {where}: {_describe(exc)}") from None


def _rail_specs(
    name: str, path: Path, config: RailsConfig, settings: PolicySettings, direction: Direction
) -> tuple[RailSpec, ...]:
    flows = config.rails.input.flows if direction == "input" else config.rails.output.flows
    defined = {f.get("id") for f in config.flows if isinstance(f, dict)}
    task_manager: LLMTaskManager | None = None
    specs: list[RailSpec] = []
    for flow in flows:
        if flow in OFFLINE_FLOWS:
            rail, rail_direction, in_colang = OFFLINE_FLOWS[flow]
            if rail_direction != direction:
                raise PolicyError(
                    f"policy {name!r}: flow {flow!r} is a {rail_direction} rail, listed under {direction}"
                )
            if in_colang and flow not in defined:
                raise PolicyError(f"policy {name!r}: flow {flow!r} is listed but not defined in the policy's .co files")
            rail_settings = _settings_of(name, settings, rail)
            try:
                offline = build_offline_rail(rail, settings, config, path)
            except ValueError as exc:
                raise PolicyError(f"policy {name!r}, rail {rail!r}: {exc}") from None
            specs.append(RailSpec(rail, flow, direction, rail_settings, offline=offline))
            continue
        if flow in defined:
            raise PolicyError(
                f"policy {name!r}: flow {flow!r} is a custom Colang flow; only the flows of mistral-serve's rails "
                f"({', '.join(sorted(OFFLINE_FLOWS))}) and NeMo library flows can run here"
            )
        task_manager = task_manager or LLMTaskManager(config)
        try:
            library = compile_library_rail(flow, direction, config, task_manager)
        except LibraryRailError as exc:
            raise PolicyError(f"policy {name!r}: {exc}") from None
        rail_settings = _settings_of(name, settings, library.name)
        specs.append(RailSpec(library.name, flow, direction, rail_settings, library=library))
    return tuple(specs)


def _check_settings_keys(name: str, settings: PolicySettings, specs: tuple[RailSpec, ...]) -> None:
    unused = sorted(set(settings.rails) - {s.name for s in specs})
    if unused:
        raise PolicyError(f"policy {name!r}: settings for rails {unused}, which none of its flows runs")


def _check_streaming(name: str, config: RailsConfig) -> None:
    streaming = config.rails.output.streaming
    if streaming is not None and streaming.enabled and streaming.stream_first:
        raise PolicyError(
            f"policy {name!r}: rails.output.streaming.stream_first sends text before output rails check it; "
            "remove rails.output.streaming (windows are set in custom_data.mistral_serve.stream)"
        )


def _resolve_yara_path(config: RailsConfig, policy_dir: Path) -> None:
    """Makes a relative ``injection_detection.yara_path`` relative to the policy, not the cwd.

    NOTE: rewritten in the parsed config, so NeMo's own action (under ``LLMRails``) finds the
    same rules.
    """
    section = config.rails.config.injection_detection
    if section is not None and section.yara_path and not Path(section.yara_path).is_absolute():
        section.yara_path = str((policy_dir / section.yara_path).resolve())


def with_shared_flows(config: RailsConfig) -> RailsConfig:
    """``config`` plus the shared flows (:data:`SHARED_COLANG`) it does not define itself.

    NOTE: only the Colang parts are joined (flows, bot and user messages); NeMo's ``+`` would
    also reset rail settings the policy set (e.g. ``injection_detection.yara_path``).
    """
    shared = RailsConfig.from_content(colang_content=SHARED_COLANG.read_text())
    own = {f.get("id") for f in config.flows if isinstance(f, dict)}
    flows = [*config.flows, *(f for f in shared.flows if not (isinstance(f, dict) and f.get("id") in own))]
    return config.model_copy(update={
        "flows": flows,
        "bot_messages": {**shared.bot_messages, **config.bot_messages},
        "user_messages": {**shared.user_messages, **config.user_messages},
    })


def load_policy(path: Path) -> Policy:
    """Loads, validates and compiles one policy directory.

    Raises:
        PolicyError: the policy is invalid; the message says where and why.
    """
    path = Path(path)
    name = path.name
    if not (path / "config.yml").is_file():
        raise PolicyError(f"policy {name!r}: {path} has no config.yml")
    try:
        config = with_shared_flows(RailsConfig.from_path(str(path)))
    except Exception as exc:  # noqa: BLE001 - NeMo raises many types for bad YAML, Colang or fields
        reason = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
        raise PolicyError(f"policy {name!r}: NeMo Guardrails cannot load it: {reason}") from None
    raw: Mapping[str, Any] = (config.custom_data or {}).get(SETTINGS_KEY) or {}
    try:
        settings = PolicySettings.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"policy {name!r}: invalid custom_data.{SETTINGS_KEY}: {_describe(exc)}") from None
    _check_streaming(name, config)
    _resolve_yara_path(config, path)
    inputs = _rail_specs(name, path, config, settings, "input")
    outputs = _rail_specs(name, path, config, settings, "output")
    _check_settings_keys(name, settings, inputs + outputs)
    return Policy(name, policy_version(path), path, config, settings, inputs, outputs)


class PolicySet:
    """The loaded policies and the default one.

    Args:
        policies: Policies by name.
        default: Name of the policy used when a request names none.
    """

    def __init__(self, policies: Mapping[str, Policy], default: str) -> None:
        if default not in policies:
            raise PolicyError(f"default policy {default!r} is not among the loaded policies {sorted(policies)}")
        self._policies = dict(policies)
        self.default = default

    def get(self, name: str | None = None) -> Policy:
        """The named policy, or the default one for ``None``.

        Raises:
            UnknownPolicyError: no policy has that name.
        """
        policy = self._policies.get(self.default if name is None else name)
        if policy is None:
            raise UnknownPolicyError(name)
        return policy

    def names(self) -> list[str]:
        """Names of the loaded policies."""
        return sorted(self._policies)

    def infos(self) -> dict[str, PolicyInfo]:
        """Picklable summaries of all policies."""
        return {name: p.info() for name, p in self._policies.items()}

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._policies.values())


def load_policies(root: Path | None = None, default: str = "default") -> PolicySet:
    """Loads every policy directory under ``root`` (the packaged policies by default).

    Directories whose name starts with ``_`` or ``.`` are skipped.

    Raises:
        PolicyError: a policy is invalid, there is none, or ``default`` is not one of them.
    """
    root = Path(root) if root is not None else PACKAGED_POLICIES
    if not root.is_dir():
        raise PolicyError(f"policy directory {root} does not exist")
    paths = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    if not paths:
        raise PolicyError(f"no policies in {root}")
    return PolicySet({p.name: load_policy(p) for p in paths}, default)
