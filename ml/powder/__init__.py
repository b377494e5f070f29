"""heimdall.ml.powder — the POWDER outdoor RSS data set: loading, baselines, training, evaluation.

Data: F. Mitchell, N. Patwari, A. Bhaskara, S. K. Kasera, "Learning-based Techniques for
Transmitter Localization: A Case Study on Model Robustness", IEEE SECON 2023 (MIT licence).
"""
