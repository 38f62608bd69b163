"""Dataset manifests (YAML) shipped with MIRBench: ``acdc``, ``dce`` and the demo datasets.

``benchmark.data.parse.find_manifest(name)`` looks here for ``NAME.yaml``.
"""
