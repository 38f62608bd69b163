"""The MIRBench harness: the ``bench`` command line, images and registration pairs, dataset
manifests and loaders, demo data, the benchmark runner, statistics and the reader study.

Heavy libraries (torch, itk) are imported inside the functions that need them, so that
``bench --help`` stays instant.
"""

__version__ = "0.1.0"
