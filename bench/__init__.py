"""Heimdall's benchmarks: each prints a rich table; none asserts anything about time.

``python -m bench`` (``make bench``) runs them all; ``python -m bench NAME …`` picks some;
``--quick`` shortens every one (smaller samples, one network size in ``pipeline``).

========== ==============================================================================
name       what it measures
========== ==============================================================================
serde      encode/decode µs of IqChunk (ci16, cf32) and Measurement, both framings
features   µs per 2400-sample chunk of measure_channel (DSP) and measure_chunk (event)
localize   ms per localize_rss for 7, 25 and 50 receivers
simulator  simulator speed vs real time (bench_simulator.py)
sink       rows/s of the ClickHouse sink into chDB vs raw client.insert
pipeline   N = 7, 25, 50 receivers: features chunks/s, latency p50/p99, first localization
========== ==============================================================================
"""
