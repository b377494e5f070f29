"""heimdall.ml.estimators — classical position estimators and their uncertainty."""
