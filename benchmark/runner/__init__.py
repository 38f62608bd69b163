"""The benchmark runner behind ``bench run``: train per fold, register every test pair with every
method, warp and score them the same way, and keep a resumable run folder
(``docs/conventions.md``, "Run folder").

- :mod:`~benchmark.runner.executor`: where jobs run (serial or a process pool), behind the
  ``concurrent.futures.Executor`` interface;
- :mod:`~benchmark.runner.scoring`: warping and metrics of one registered pair;
- :mod:`~benchmark.runner.pair_job`: one (method, fold, pair) job and its atomic result;
- :mod:`~benchmark.runner.run`: the whole run;
- :mod:`~benchmark.runner.commands`: the ``bench run`` handler.
"""
