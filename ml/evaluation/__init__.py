"""heimdall.ml.evaluation — localisation error statistics, ellipse coverage, calibration, plots."""
