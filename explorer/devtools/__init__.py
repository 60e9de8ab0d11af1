"""Tools for developers: the benchmark, page-rerun timing, and starting the app server and a browser."""
__all__ = ["appserver", "bench", "bench_pages"]  # submodules, imported by name (each is heavy in its own way)
