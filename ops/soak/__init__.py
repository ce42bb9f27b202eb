"""Soak: bounded mixed load with faults injected on a real multi-node cluster (``python -m ops.soak``)."""
