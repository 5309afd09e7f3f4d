"""Benchmarks of the event store (run them as modules, e.g. ``python -m bench.append``)."""
