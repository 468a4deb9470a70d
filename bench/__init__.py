"""MaskWatch benchmarks, each run as ``python -m bench.NAME`` from the project root."""
