"""The shared core of MIRBench: errors, images and fields on disk, pairs, normalisation, landmarks,
strict CSV reading and atomic writes.

It imports nothing else of the project; metrics, methods, the data loaders and everything above
build on it (``docs/architecture.md``, checked by ``tests/test_architecture.py``).
"""
