"""Fan-out of one API request's sequences to the engine, and fan-in of their outputs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from ..engine.api import EngineClient, EngineOutput, EngineRequest


async def interleave(engine: EngineClient, sequences: Sequence[EngineRequest],
                     stopped: set[int]) -> AsyncGenerator[tuple[int, EngineOutput], None]:
    """Interleaves the output streams of all sequences of one API request, as ``(choice index,
    output)``; a choice whose index enters ``stopped`` (cut by a rail) stops generating."""
    if len(sequences) == 1:
        stream = engine.generate(sequences[0])
        try:
            async for output in stream:
                yield 0, output
        finally:
            await stream.aclose()  # cancels the engine call when we stop early
        return
    queue: asyncio.Queue[tuple[int, EngineOutput] | Exception | None] = asyncio.Queue()

    async def pump(index: int, request: EngineRequest) -> None:
        stream = engine.generate(request)
        try:
            async for output in stream:
                if index in stopped:
                    break
                await queue.put((index, output))
        except Exception as exc:  # noqa: BLE001 - forwarded to the consumer, which re-raises it
            await queue.put(exc)
        finally:
            await stream.aclose()
            await queue.put(None)

    tasks = [asyncio.create_task(pump(i, r)) for i, r in enumerate(sequences)]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
