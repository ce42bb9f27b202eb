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


def test_engine_sweep_reports_every_level_side_by_side(tiny_model_dir):
    from ops.bench import engine_sweep

    result = engine_sweep.sweep(levels=[1, 3], tokens=3, repeats=1, model_dir=tiny_model_dir, with_vllm=False)
    assert [row["concurrency"] for row in result["levels"]] == [1, 3]
    for row in result["levels"]:
        assert row["engine"] > 0 and row["generate_one_at_a_time"] > 0 and row["vllm"] is None
        assert row["engine_vs_generate"] == pytest.approx(row["engine"] / row["generate_one_at_a_time"])
    assert "engine/vLLM" in engine_sweep.format_report(result)


def test_quantization_bench_reports_memory_speed_and_agreement(tiny_model_dir):
    from ops.bench import quant

    result = quant.measure(modes=("none", "int8"), concurrency=2, tokens=3, model_dir=tiny_model_dir)
    none, int8 = result["modes"]
    assert none["greedy_agreement"] == 1.0 and 0.0 <= int8["greedy_agreement"] <= 1.0
    assert int8["weight_bytes"] < none["weight_bytes"] and int8["tokens_per_s"] > 0
    assert quant.agreement([[1, 2, 3]], [[1, 9, 3]]) == pytest.approx(1 / 3)  # stops at the divergence
    assert "greedy agree" in quant.format_report(result)


def test_bench_plot_draws_every_section(tmp_path):
    from ops.bench import run

    results = {
        "generated_at": "now", "engine_compare": None, "load": None,
        "engine_sweep": {"tokens_per_request": 2, "vllm": "not installed", "levels": [
            {"concurrency": 1, "generate_one_at_a_time": 5.0, "engine": 9.0, "vllm": None}]},
        "quantization": {"device": "cpu", "concurrency": 2, "modes": [
            {"mode": "none", "tokens_per_s": 3.0, "weight_bytes": 2**20, "greedy_agreement": 1.0}]},
    }
    run.plot(results, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").stat().st_size > 0


def test_constrained_bench_pairs_free_and_constrained_runs(tiny_model_dir):
    from ops.bench import constrained

    result = constrained.compare(tokens=4, concurrency=2, rounds=1, model_dir=str(tiny_model_dir))
    pair = result["pairs"][0]
    # The open schema keeps every constrained sequence going: both runs make the same tokens.
    assert pair["free_tokens"] == pair["constrained_tokens"] == 8
    assert pair["free"] > 0 and pair["constrained"] > 0 and "median ratio" in constrained.format_report(result)
