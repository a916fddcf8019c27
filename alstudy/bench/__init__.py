"""Benchmarks, run by hand (`alstudy bench al`, `alstudy bench strategies`): what they measure and
what they found is in docs/developer/benchmarks.md."""
