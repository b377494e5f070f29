"""heimdall.streams.dsp — signal processing used by the stream agents (pure numpy/scipy)."""
