"""User-facing errors: raised for bad input, printed by the CLI without a traceback."""


class BenchError(ValueError):
    """An error caused by the user's input (a file, an argument, a manifest).

    The message names the file or argument, the value found, and what was expected. The ``bench``
    command prints it and exits with status 2. It is a :class:`ValueError` (a bad value was
    given), so callers of the maths functions that catch ``ValueError`` catch it too.
    """


class ValidationError(BenchError):
    """Several problems found at once while validating data; ``problems`` lists them all."""

    def __init__(self, what: str, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{what}: {len(self.problems)} problem(s)\n{lines}")


class FieldFileError(ValueError):
    """A precomputed field file exists but does not fit its pair (shape, grid, content).

    Not a :class:`BenchError` on purpose: the runner records a BenchError as the
    method's failed (and finished) result, while a wrong file fails its task without a result:
    the other tasks finish, ``bench run`` names it and exits with 1, and the next run tries
    the pair again.
    """
