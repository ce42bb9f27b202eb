"""The engine comparison benchmark runs at tiny sizes and reports every field (no timing limits)."""

from __future__ import annotations

import pytest

from ops.bench import engine_compare, load


def test_engine_compare_reports_positive_throughputs_and_ratios(tiny_model, tiny_tokenizer):
    result = engine_compare.compare(tiny_model, tiny_tokenizer, tokens=8, concurrency=4, repeats=1)

    for method in ("one_at_a_time", "static_batch", "engine"):
        assert result[method]["output_tokens"] == 8 * 4
        assert result[method]["tokens_per_s"] > 0
    assert result["engine_vs_one_at_a_time"] > 0
    assert result["engine_vs_static_batch"] > 0
    assert result["requests"] == 4 and len(result["prompt_tokens"]) == 4
    assert "engine / one-at-a-time" in engine_compare.format_report(result)


def test_engine_compare_restores_torch_threads(tiny_model, tiny_tokenizer):
    import torch

    before = torch.get_num_threads()
    engine_compare.compare(tiny_model, tiny_tokenizer, tokens=2, concurrency=2, repeats=1, threads=1)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:1/v1", "http://[::1]:8/v1"])
def test_load_accepts_loopback(url):
    load.require_loopback(url)


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/v1", "https://api.openai.com/v1", "http://192.168.1.2/v1"])
def test_load_refuses_remote_unless_allowed(url):
    with pytest.raises(ValueError, match="allow-remote"):
        load.require_loopback(url)
    load.require_loopback(url, allow_remote=True)


def test_percentile_interpolates():
    assert load.percentile([], 50) is None
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert load.percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_constrained_bench_pairs_free_and_constrained_runs(tiny_model_dir):
    from ops.bench import constrained

    result = constrained.compare(tokens=4, concurrency=2, rounds=1, model_dir=str(tiny_model_dir))
    pair = result["pairs"][0]
    # The open schema keeps every constrained sequence going: both runs make the same tokens.
    assert pair["free_tokens"] == pair["constrained_tokens"] == 8
    assert pair["free"] > 0 and pair["constrained"] > 0 and "median ratio" in constrained.format_report(result)
