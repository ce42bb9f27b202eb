"""Prepared scripts for CUDA machines (run by hand there, never in CI)."""
