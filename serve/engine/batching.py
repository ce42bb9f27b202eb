"""Continuous batching over a stock transformers causal LM.

One thread owns the model and its pre-allocated KV slots (:mod:`serve.engine.kv`). Each
iteration it admits waiting requests into free slots (reusing cached prompt prefixes), runs one
prefill step of at most ``max_prefill_tokens`` prompt tokens (long prompts are cut into chunks,
so running streams wait for a chunk, never for a whole long prompt), then decodes one token for
every running sequence in one batched forward, and retires finished or cancelled sequences
(freeing their slot: nothing is copied). Sampling and stop handling are batched; a failure in
one sequence fails only that sequence. Callers on an asyncio loop use
:meth:`BatchingEngine.generate`; it runs no Ray code, so benchmarks and the GPU script use it
directly.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import threading
import time
from collections.abc import AsyncIterator

import torch

from .constraints import JsonConstraint, Penalties, mask_rows
from .prefix_cache import PrefixCache
from .runner import ModelRunner, PrefillRow
from .sampling import make_generator, mask_tokens, sample_next_tokens, token_logprobs
from .sequence import GenerationHandle, Sequence, Sink, eos_token_ids, next_output, on_token_telemetry
from .telemetry import EngineTelemetry
from .text import IncrementalDetokenizer, StopStringFilter
from .types import EngineOutput, EngineRequest, EngineStats

logger = logging.getLogger(__name__)

__all__ = ["BatchingEngine", "GenerationHandle", "Sink"]


class BatchingEngine:
    """Generates many sequences at once on one model.

    Args:
        model: A transformers causal LM in eval mode.
        tokenizer: Its tokenizer (decoding and the end-of-sequence ids).
        max_batch_size: Sequences decoded together (KV slots).
        max_model_len: Context limit per sequence (prompt plus completion).
        max_prefill_tokens: Prompt tokens prefilled per engine iteration (the chunk budget).
        prefix_cache_bytes: Memory for shared prompt prefixes' keys/values (0 disables it).
        prefix_block_size: Tokens per reusable prefix block.
        static_shapes: Decode with one shape (for CUDA graphs); see :class:`ModelRunner`.
        compile_decode: ``torch.compile`` the decode step (CUDA).
        telemetry: Receives per-sequence timings for metrics (optional).
    """

    def __init__(self, model, tokenizer, *, max_batch_size: int, max_model_len: int, max_prefill_tokens: int = 512,
                 prefix_cache_bytes: int = 64 << 20, prefix_block_size: int = 16, static_shapes: bool = False,
                 compile_decode: bool = False, telemetry: EngineTelemetry | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_model_len = max_model_len
        self.max_prefill_tokens = max_prefill_tokens
        self.telemetry = telemetry
        self.runner = ModelRunner(model, slots=max_batch_size, max_model_len=max_model_len,
                                  static_shapes=static_shapes, compile_decode=compile_decode)
        self.device = self.runner.device
        self.prefix_cache = PrefixCache(prefix_block_size, prefix_cache_bytes) if prefix_cache_bytes else None
        self._eos_ids = frozenset(eos_token_ids(model, tokenizer))
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._prefilling: list[Sequence] = []
        self._running: list[Sequence] = []
        self._free_slots = list(range(max_batch_size))
        self._lock = threading.Condition()
        self._stopping = False
        self._stats = EngineStats(kv_cache_capacity_bytes=self.runner.cache.capacity_bytes())
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
            stats = self._stats
            return EngineStats(
                running=len(self._running) + len(self._prefilling), waiting=len(self._waiting),
                started=stats.started, finished=dict(stats.finished), steps=stats.steps,
                kv_cache_used_bytes=stats.kv_cache_used_bytes, kv_cache_capacity_bytes=stats.kv_cache_capacity_bytes,
                prefix_cache_bytes=self.prefix_cache.used_bytes if self.prefix_cache else 0,
                prefix_cache_hit_tokens=self.prefix_cache.hit_tokens if self.prefix_cache else 0,
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
        sequence = Sequence(
            request=request, sink=sink,
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
        return GenerationHandle(sequence, self._wake)

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
                    while not self._stopping and not (self._running or self._waiting or self._prefilling):
                        self._lock.wait()
                    if self._stopping:
                        break
                    joining = self._take_joining()
                self._admit(joining)
                if self._prefilling:
                    self._prefill_step()
                    self._retire()  # a sequence failed or finished by its first token leaves now
                if self._running:
                    self._decode_step()
                self._retire()
        for sequence in self._running + self._prefilling + list(self._waiting):
            self._finish(sequence, "cancelled")

    def _take_joining(self) -> list[Sequence]:
        """Pops waiting sequences for the free slots (the caller holds the lock)."""
        joining: list[Sequence] = []
        while self._waiting and len(joining) < len(self._free_slots):
            candidate = self._waiting.popleft()
            if candidate.cancelled:
                self._finish(candidate, "cancelled")
            else:
                joining.append(candidate)
        return joining

    def _admit(self, joining: list[Sequence]) -> None:
        """Gives each joining sequence a slot and copies in its longest cached prompt prefix."""
        for sequence in joining:
            sequence.slot = heapq.heappop(self._free_slots)  # lowest first: decode spans fewer rows
            prompt = sequence.request.prompt_token_ids
            if self.prefix_cache is not None and len(prompt) <= self.runner.length:
                blocks = self.prefix_cache.lookup(prompt, len(prompt) - 1)  # the last token makes logits
                self.runner.cache.copy_in(sequence.slot, 0, blocks)
                sequence.cached = sum(k.shape[2] for k, _ in blocks)
            self._prefilling.append(sequence)

    def _prefill_step(self) -> None:
        """Prefills up to ``max_prefill_tokens`` prompt tokens of the joining sequences."""
        budget, rows, owners = self.max_prefill_tokens, [], []
        for sequence in self._prefilling:
            if budget <= 0:
                break
            if sequence.cancelled:
                continue
            size = min(sequence.prompt_left, budget)
            start = sequence.cached
            rows.append(PrefillRow(sequence.slot, sequence.request.prompt_token_ids[start : start + size], start))
            owners.append(sequence)
            budget -= size
        together = [i for i, row in enumerate(rows) if self.runner.fits_buffer(row)]
        alone = [[i] for i in range(len(rows)) if i not in together]
        for group in ([together] if together else []) + alone:
            self._prefill_isolated([rows[i] for i in group], [owners[i] for i in group])

    def _prefill_isolated(self, rows: list[PrefillRow], owners: list[Sequence]) -> None:
        """Prefills rows together; when that fails, one at a time, so that a request the model
        cannot take (say, a token id outside its vocabulary) fails alone."""
        try:
            logits = self.runner.prefill(rows)
        except Exception:
            if len(rows) == 1:
                logger.exception("prefill failed; failing its sequence")
                self._finish(owners[0], "error")
                return
            # NOTE: a failed pass may have written some rows' keys/values; retrying writes the
            # same values at the same positions, so the retry starts from a consistent state.
            for row, owner in zip(rows, owners):
                self._prefill_isolated([row], [owner])
            return
        done = []
        for row_index, (row, sequence) in enumerate(zip(rows, owners)):
            sequence.cached += len(row.tokens)
            if sequence.prompt_left == 0:
                done.append(row_index)
        if self.telemetry is not None:
            self.telemetry.on_prefill(sum(len(r.tokens) for r in rows))
        finished = [owners[i] for i in done]
        for sequence in finished:
            self._prefilling.remove(sequence)
            self._remember_prefix(sequence)
        self._running.extend(finished)
        if finished:
            self._accept(finished, logits.index_select(0, torch.as_tensor(done, device=logits.device)))

    def _remember_prefix(self, sequence: Sequence) -> None:
        """Stores the prompt's whole blocks that the prefix cache lacks (never a wrapped buffer)."""
        prompt = sequence.request.prompt_token_ids
        if self.prefix_cache is None or len(prompt) > self.runner.length:
            return
        for start, stop in self.prefix_cache.missing(prompt, len(prompt)):
            keys, values = self.runner.cache.copy_out(sequence.slot, start, stop)
            self.prefix_cache.store(prompt, start, keys, values)

    def _decode_step(self) -> None:
        running = [s for s in self._running if s.finish_reason is None and not s.cancelled]
        if not running:
            return
        try:
            logits = self.runner.decode([s.slot for s in running], [s.last_token for s in running],
                                        [s.cached for s in running])
        except Exception:
            # A decode step's inputs are tokens the engine chose itself, so a failure here is the
            # model's (device error, hung kernel), not one caller's: every running sequence fails.
            logger.exception("engine decode step failed; failing %d sequences", len(running))
            for sequence in running:
                self._finish(sequence, "error")
            return
        for sequence in running:
            sequence.cached += 1
        self._accept(running, logits)
        with self._lock:
            self._stats.steps += 1

    def _accept(self, sequences: list[Sequence], logits: torch.Tensor) -> None:
        """Samples one token per sequence (batched), emits its text, decides whether it finished."""
        live = [s for s in sequences if not s.cancelled]
        if not live:
            return
        if len(live) != len(sequences):
            rows = [i for i, s in enumerate(sequences) if not s.cancelled]
            logits = logits.index_select(0, torch.as_tensor(rows, device=logits.device))
        logits, live = self._constrain(live, logits)
        if not live:
            return
        params, generators = [s.request.sampling for s in live], [s.generator for s in live]
        try:
            tokens: list[int | None] = list(sample_next_tokens(logits, params, generators))
        except Exception:  # noqa: BLE001 - find the row(s) at fault, row by row
            tokens = [self._sample_one(s, logits[row : row + 1]) for row, s in enumerate(live)]
        logprobs = token_logprobs(logits, [t or 0 for t in tokens], [s.request.sampling.logprobs for s in live])
        for sequence, token, logprob in zip(live, tokens, logprobs):
            if token is None:
                continue
            try:
                if sequence.constraint is not None:
                    sequence.constraint.accept(token)
                if sequence.penalties is not None:
                    sequence.penalties.accept(token)
                is_eos = token in self._eos_ids and not sequence.request.sampling.ignore_eos
                output = next_output(sequence, token, logprob, is_eos=is_eos, max_model_len=self.max_model_len)
                on_token_telemetry(sequence, self.telemetry)
                self._emit(sequence, output)
            except Exception:
                logger.exception("sequence %s failed after its token", sequence.request.request_id)
                self._finish(sequence, "error")

    def _constrain(self, live: list[Sequence], logits: torch.Tensor) -> tuple[torch.Tensor, list[Sequence]]:
        """Applies ``min_tokens`` (batched) and each sequence's logits processors to the logits."""
        holding = [i for i, s in enumerate(live) if s.holds_eos and not s.request.sampling.ignore_eos]
        if holding or any(s.request.logits_processors for s in live):
            logits = logits.float().clone()  # the model's output may be a view it reuses
        mask_tokens(logits, holding, sorted(self._eos_ids))
        failed = []
        for row, sequence in enumerate(live):
            try:
                for processor in sequence.request.logits_processors:
                    logits[row] = processor(sequence.output_ids, logits[row])
            except Exception:
                logger.exception("logits processor failed for sequence %s", sequence.request.request_id)
                self._finish(sequence, "error")
                failed.append(row)
        if failed:
            keep = [i for i in range(len(live)) if i not in failed]
            logits = logits.index_select(0, torch.as_tensor(keep, device=logits.device))
            live = [live[i] for i in keep]
        return self._mask(live, logits)

    def _mask(self, live: list[Sequence], logits: torch.Tensor) -> tuple[torch.Tensor, list[Sequence]]:
        """Penalties, logit bias and grammar constraints (batched; a row whose grammar fails is failed alone)."""
        if not any(s.constraint is not None or s.penalties is not None or s.request.sampling.logit_bias
                   for s in live):
            return logits, live
        logits, failed = mask_rows(logits, [s.constraint for s in live],
                                   [s.request.sampling.logit_bias for s in live], [s.penalties for s in live])
        for row in failed:
            self._finish(live[row], "error")
        return logits, [s for row, s in enumerate(live) if row not in failed]

    def _sample_one(self, sequence: Sequence, logits: torch.Tensor) -> int | None:
        """One row's token, or None after failing that sequence (and only it)."""
        try:
            return sample_next_tokens(logits, [sequence.request.sampling], [sequence.generator])[0]
        except Exception:
            logger.exception("sampling failed for sequence %s", sequence.request.request_id)
            self._finish(sequence, "error")
            return None

    def _emit(self, sequence: Sequence, output: EngineOutput) -> None:
        sequence.sink(output)
        if output.finish_reason is not None:
            self._finish(sequence, output.finish_reason, notify=False)

    def _finish(self, sequence: Sequence, reason: str, notify: bool = True) -> None:
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
        """Frees the slots of finished and cancelled sequences (no cache is copied)."""
        for sequence in self._running + self._prefilling:
            if sequence.cancelled:
                self._finish(sequence, "cancelled")
        leaving = [s for s in self._running + self._prefilling if s.finish_reason is not None]
        with self._lock:
            if leaving:
                self._running = [s for s in self._running if s.finish_reason is None]
                self._prefilling = [s for s in self._prefilling if s.finish_reason is None]
                for sequence in leaving:
                    heapq.heappush(self._free_slots, sequence.slot)
                    sequence.slot = -1
            live = self._running + self._prefilling
            self._stats.kv_cache_used_bytes = self.runner.cache.used_bytes([s.cached for s in live])

