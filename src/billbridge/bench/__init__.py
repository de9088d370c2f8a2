"""Benchmarks: `billbridge bench ...`. Figures go to docs/benchmarks.md."""
