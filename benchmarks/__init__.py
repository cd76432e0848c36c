"""Benchmarks of paralleltask against its peers; run ``python benchmarks/run.py``."""
