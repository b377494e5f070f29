"""heimdall.ml.tdoa — time-difference measurement from time-stamped recordings."""
