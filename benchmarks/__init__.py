"""Baselines (plain Keras, plain PyTorch) and the entry point ``python -m benchmarks`` (= ``cnnlab bench``)."""
