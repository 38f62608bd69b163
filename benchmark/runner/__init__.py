"""The benchmark runner behind ``bench run``: plan the tasks of every fold (train per method,
fold and seed; register every test pair with every method), run those not up to date on an
executor, score every registration the same way, and keep a content-keyed, resumable run folder
(``docs/conventions.md``, "Run folder"; ``docs/cluster.md``).

- :mod:`~benchmark.core.layout`: every path of the run folder;
- :mod:`~benchmark.runner.fingerprint`: content hashes of input files and settings;
- :mod:`~benchmark.runner.plan`: the tasks, their dependencies, keys and states (``--dry-run``);
- :mod:`~benchmark.runner.tasks`: one task where an executor runs it, with its cost record;
- :mod:`~benchmark.runner.executor`: serial in-process, or dask.distributed;
- :mod:`~benchmark.runner.scoring`: warping and metrics of one registered pair;
- :mod:`~benchmark.runner.run`: the whole run (plan, execute, results, costs, provenance);
- :mod:`~benchmark.runner.commands`: the ``bench run`` handler.
"""
