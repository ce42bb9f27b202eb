"""Benchmarks: the engine against plain ``generate``, and the service under a streaming load sweep."""
