"""Continuous batching over a stock transformers causal LM.

One thread owns the model and the KV cache. Each iteration it admits waiting requests (one
batched prefill), decodes one token for every running sequence (one batched forward), and
retires finished or cancelled sequences, so requests join and leave the batch between tokens
instead of waiting for a whole batch to finish. Callers on an asyncio loop use
:meth:`BatchingEngine.generate`; it runs no Ray code, so benchmarks and the GPU script use it
directly.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from . import kv
from .constraints import JsonConstraint, Penalties, apply_masks
from .sampling import make_generator, sample_next_tokens
from .telemetry import EngineTelemetry
from .text import IncrementalDetokenizer, StopStringFilter
from .types import EngineOutput, EngineRequest, EngineStats

logger = logging.getLogger(__name__)

Sink = Callable[[EngineOutput], object]  # its return value is ignored


@dataclass(eq=False)
class _Sequence:
    """A request's state inside the engine (touched only by the engine thread, but `cancelled`)."""

    request: EngineRequest
    sink: Sink
    detokenizer: IncrementalDetokenizer
    stop_filter: StopStringFilter
    generator: torch.Generator | None
    constraint: JsonConstraint | None = None  # constrained decoding (SamplingParams.json_schema)
    penalties: Penalties | None = None  # presence/frequency penalties
    cached: int = 0  # tokens whose keys/values are in the cache
    generated: int = 0
    last_token: int = -1
    finish_reason: str | None = None
    cancelled: bool = False
    # Metrics (see telemetry.py): monotonic times of submission and of the latest token.
    submitted_at: float = 0.0
    last_token_at: float = 0.0


class GenerationHandle:
    """Lets the submitter cancel its sequence; the engine drops it before the next token."""

    def __init__(self, sequence: _Sequence, engine: BatchingEngine) -> None:
        self._sequence = sequence
        self._engine = engine

    def cancel(self) -> None:
        """Stops generating; no more outputs are delivered (safe from any thread)."""
        self._sequence.cancelled = True
        self._engine._wake()


class BatchingEngine:
    """Generates many sequences at once on one model.

    Args:
        model: A transformers causal LM in eval mode.
        tokenizer: Its tokenizer (decoding and the end-of-sequence ids).
        max_batch_size: Sequences decoded together.
        max_model_len: Context limit per sequence (prompt plus completion).
        max_prefill_tokens: Padded prompt tokens admitted into one prefill.
        telemetry: Receives per-sequence timings for metrics (optional).
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch_size: int,
        max_model_len: int,
        max_prefill_tokens: int = 8192,
        telemetry: EngineTelemetry | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_model_len = max_model_len
        self.max_prefill_tokens = max_prefill_tokens
        self.telemetry = telemetry
        self.device = next(model.parameters()).device
        self._eos_ids = frozenset(_eos_token_ids(model, tokenizer))
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self._eos_ids, default=0)
        self._waiting: collections.deque[_Sequence] = collections.deque()
        self._running: list[_Sequence] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None
        self._lock = threading.Condition()
        self._stopping = False
        self._stats = EngineStats()
        self._thread = threading.Thread(target=self._loop, name="batching-engine", daemon=True)

    # ---- public API -------------------------------------------------------------------------

    def start(self) -> BatchingEngine:
        """Starts the engine thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the engine thread; sequences still running are cancelled."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join(timeout=30)

    def is_alive(self) -> bool:
        """Whether the engine thread is running."""
        return self._thread.is_alive()

    def stats(self) -> EngineStats:
        """A snapshot of the engine's counters."""
        with self._lock:
            return EngineStats(
                running=len(self._running),
                waiting=len(self._waiting),
                started=self._stats.started,
                finished=dict(self._stats.finished),
                steps=self._stats.steps,
            )

    def submit(self, request: EngineRequest, sink: Sink) -> GenerationHandle:
        """Queues a request; ``sink`` receives its outputs on the engine thread.

        Raises:
            ValueError: the prompt plus ``max_tokens`` exceed ``max_model_len``, or the JSON
                schema cannot be compiled (:class:`~serve.engine.constraints.ConstraintError`).
        """
        needed = len(request.prompt_token_ids) + request.sampling.max_tokens
        if not request.prompt_token_ids or needed > self.max_model_len:
            raise ValueError(f"request needs {needed} tokens of context, the limit is {self.max_model_len}")
        sequence = _Sequence(
            request=request,
            sink=sink,
            detokenizer=IncrementalDetokenizer(
                self.tokenizer, request.prompt_token_ids, request.sampling.show_token_ids
            ),
            stop_filter=StopStringFilter(request.sampling.stop),
            generator=make_generator(request.sampling.seed, self.device),
            constraint=None if request.sampling.json_schema is None else JsonConstraint(
                self.tokenizer, request.sampling.json_schema, self.model.config.vocab_size
            ),
            penalties=Penalties(request.sampling.presence_penalty, request.sampling.frequency_penalty)
            if request.sampling.presence_penalty or request.sampling.frequency_penalty else None,
            submitted_at=time.monotonic(),
        )
        with self._lock:
            if self._stopping:
                raise RuntimeError("engine is stopped")
            self._waiting.append(sequence)
            self._stats.started += 1
            self._lock.notify_all()
        return GenerationHandle(sequence, self)

    async def generate(self, request: EngineRequest) -> AsyncIterator[EngineOutput]:
        """Streams the outputs of one request; closing the iterator cancels the request.

        Outputs that arrive while the consumer is busy are merged into one, so a slow consumer
        gets fewer, larger increments instead of falling behind.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[EngineOutput] = asyncio.Queue()
        handle = self.submit(request, lambda out: loop.call_soon_threadsafe(queue.put_nowait, out))
        try:
            while True:
                output = await queue.get()
                while output.finish_reason is None and not queue.empty():
                    output.merge(queue.get_nowait())
                yield output
                if output.finish_reason is not None:
                    return
        finally:
            handle.cancel()

    # ---- engine thread ----------------------------------------------------------------------

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._lock:
                    while not self._stopping and not self._running and not self._waiting:
                        self._lock.wait()
                    if self._stopping:
                        break
                    joining = self._take_joining()
                try:
                    if joining:
                        self._prefill(joining)
                    if self._running:
                        self._decode()
                except Exception:  # one bad step must not kill the engine
                    logger.exception("engine step failed; failing %d sequences", len(self._running))
                    for sequence in self._running + joining:
                        self._finish(sequence, "error")
                    self._running, self._cache, self._mask = [], None, None
                self._retire()
        for sequence in list(self._running) + list(self._waiting):
            self._finish(sequence, "cancelled")

    def _take_joining(self) -> list[_Sequence]:
        """Pops waiting sequences that fit the free slots and the prefill token budget."""
        joining: list[_Sequence] = []
        longest = 0
        while self._waiting and len(self._running) + len(joining) < self.max_batch_size:
            candidate = self._waiting[0]
            if candidate.cancelled:
                self._waiting.popleft()
                self._finish(candidate, "cancelled")
                continue
            longest_if_added = max(longest, len(candidate.request.prompt_token_ids))
            if joining and longest_if_added * (len(joining) + 1) > self.max_prefill_tokens:
                break
            joining.append(self._waiting.popleft())
            longest = longest_if_added
        return joining

    def _prefill(self, joining: list[_Sequence]) -> None:
        prompts = [s.request.prompt_token_ids for s in joining]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(dim=-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions,
            cache=cache, use_cache=True, logits_to_keep=1,
        ).logits[:, -1, :]
        kv.zero_padding(cache, mask)
        self._cache, self._mask = kv.concat(self._cache, self._mask, cache, mask)
        for sequence, prompt in zip(joining, prompts):
            sequence.cached = len(prompt)
        if self.telemetry is not None:
            self.telemetry.on_prefill(sum(len(p) for p in prompts))
        self._running.extend(joining)
        self._accept(joining, logits)

    def _decode(self) -> None:
        assert self._cache is not None and self._mask is not None
        input_ids = torch.tensor([[s.last_token] for s in self._running], device=self.device)
        positions = torch.tensor([[s.cached] for s in self._running], device=self.device)
        mask = torch.cat([self._mask, self._mask.new_ones((len(self._running), 1))], dim=1)
        logits = self.model(
            input_ids=input_ids, attention_mask=mask, position_ids=positions,
            cache=self._cache, use_cache=True, logits_to_keep=1,
        ).logits[:, -1, :]
        self._mask = mask
        for sequence in self._running:
            sequence.cached += 1
        self._accept(self._running, logits)
        self._stats.steps += 1

    def _accept(self, sequences: list[_Sequence], logits: torch.Tensor) -> None:
        """Samples one token per sequence, emits its text and decides whether it finished."""
        live = [s for s in sequences if not s.cancelled]
        rows = [i for i, s in enumerate(sequences) if not s.cancelled]
        if not live:
            return
        if len(rows) != len(sequences):
            logits = logits.index_select(0, torch.tensor(rows, device=logits.device))
        # The logits-processing hook: constrained rows keep only the tokens their grammar allows.
        logits = apply_masks(logits, [s.constraint for s in live], [s.request.sampling.logit_bias for s in live],
                             [s.penalties for s in live])
        tokens = sample_next_tokens(logits, [s.request.sampling for s in live], [s.generator for s in live])
        for sequence, token in zip(live, tokens):
            self._append(sequence, token)

    def _append(self, sequence: _Sequence, token: int) -> None:
        params = sequence.request.sampling
        sequence.last_token = token
        sequence.generated += 1
        if sequence.constraint is not None:
            sequence.constraint.accept(token)
        if sequence.penalties is not None:
            sequence.penalties.accept(token)
        if self.telemetry is not None:
            now = time.monotonic()
            first = sequence.generated == 1
            self.telemetry.on_token(now - (sequence.submitted_at if first else sequence.last_token_at), first)
            sequence.last_token_at = now
        if token in self._eos_ids and not params.ignore_eos:
            self._emit(sequence, sequence.stop_filter.flush(), "stop")
            return
        text, stopped = sequence.stop_filter.feed(sequence.detokenizer.push(token))
        if stopped:
            self._emit(sequence, text, "stop")
        elif sequence.generated >= params.max_tokens or sequence.cached + 1 >= self.max_model_len:
            self._emit(sequence, text + sequence.stop_filter.flush(), "length")
        else:
            self._emit(sequence, text, None)

    def _emit(self, sequence: _Sequence, text: str, finish_reason: str | None) -> None:
        sequence.sink(EngineOutput(text=text, num_tokens=1, finish_reason=finish_reason))  # type: ignore[arg-type]
        if finish_reason is not None:
            self._finish(sequence, finish_reason, notify=False)

    def _finish(self, sequence: _Sequence, reason: str, notify: bool = True) -> None:
        if sequence.finish_reason is not None:
            return
        sequence.finish_reason = reason
        if self.telemetry is not None:
            self.telemetry.on_finish(reason, time.monotonic() - sequence.submitted_at)
        if notify and not sequence.cancelled:
            sequence.sink(EngineOutput(finish_reason=reason))  # type: ignore[arg-type]
        with self._lock:
            self._stats.finished[reason] = self._stats.finished.get(reason, 0) + 1

    def _retire(self) -> None:
        """Removes finished and cancelled sequences from the batch and the cache."""
        for sequence in self._running:
            if sequence.cancelled:
                self._finish(sequence, "cancelled")
        keep = [i for i, s in enumerate(self._running) if s.finish_reason is None]
        if len(keep) == len(self._running):
            return
        with self._lock:
            self._running = [self._running[i] for i in keep]
        if not keep:
            self._cache, self._mask = None, None
            return
        assert self._cache is not None and self._mask is not None
        self._mask = kv.select_rows(self._cache, self._mask, torch.tensor(keep, device=self.device))


def _eos_token_ids(model, tokenizer) -> Iterable[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return ids
