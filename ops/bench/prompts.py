"""The fixed prompt set shared by the benchmarks.

Sixteen user messages of deliberately varied lengths (a few words to a few paragraphs), so batched
runs pay for left padding the way real traffic does. The engine comparison and the load generator
use the same set, so their numbers describe the same work.
"""

from __future__ import annotations

_PARAGRAPH = (
    "A language model in production is mostly a queueing problem with a very expensive server at "
    "the end of the queue. Requests arrive in bursts, each one asks for a different number of "
    "tokens, and the accelerator is happiest when it has a full batch to chew on. "
)

PROMPTS: tuple[str, ...] = (
    "Hello!",
    "What is grouped-query attention?",
    "Write a haiku about caches.",
    "Explain time to first token in one sentence.",
    "List three reasons why batching requests improves throughput on a GPU.",
    "Summarise the trade-off between latency and throughput for an inference service that serves "
    "many small teams with different traffic patterns.",
    "You are a helpful assistant. Describe how a sliding attention window limits how far back each "
    "layer looks, and why information still travels further than one window.",
    "Give me a short checklist for rolling out a new model version behind an API without "
    "interrupting requests that are already streaming.",
    _PARAGRAPH + "Why does the first token matter more than the last?",
    "Compare static batching with continuous batching. In static batching every sequence in the "
    "batch waits for the longest one; in continuous batching sequences join and leave between "
    "decoding steps. Which one keeps the accelerator busier, and what does it cost in complexity?",
    _PARAGRAPH * 2 + "What should the dashboards show first?",
    "Translate into plain words: the key-value cache grows linearly with the context length and the "
    "batch size, and with grouped-query attention it is several times smaller than with ordinary "
    "multi-head attention, because several query heads share one key and value head.",
    _PARAGRAPH * 3 + "Propose an autoscaling rule.",
    "Write a short story about an engineer who spends a night chasing a latency regression that "
    "turns out to be caused by too many threads fighting over two processor cores, and how the "
    "dashboards finally gave it away. Keep it light and end with a lesson.",
    _PARAGRAPH * 4 + "Summarise the text above in two sentences.",
    _PARAGRAPH * 6 + "Which metric would you alert on, and at what percentile?",
)
