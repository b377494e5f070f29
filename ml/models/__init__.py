"""heimdall.ml.models — learned localisation models (torch) and their ONNX export."""
