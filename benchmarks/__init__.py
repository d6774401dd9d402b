"""audiovis benchmarks: one module per area (``bench_<area>.py`` with ``run() -> list[dict]``)."""
