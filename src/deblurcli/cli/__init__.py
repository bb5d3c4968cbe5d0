"""The ``deblur`` command: a thin typer layer over the library.

Each command parses options, calls library functions, and renders with rich. Library modules that
need torch are imported inside the command functions, so ``deblur --help`` stays fast and torch-free.
Exit codes: 0 all done, 1 some items failed (the others were processed), 2 usage error.

Where things live:

* :mod:`~deblurcli.cli.app`: the typer app, its root options (--version) and :func:`main`.
* :mod:`~deblurcli.cli.options`: the ``Annotated`` option aliases shared by several commands.
* :mod:`~deblurcli.cli.exits`: the one place where errors become exit codes and one-line messages.
* one module per command: :mod:`~deblurcli.cli.score`, :mod:`~deblurcli.cli.fix` (its video
  half, rendering :mod:`deblurcli.video`, in :mod:`~deblurcli.cli.fix_video`),
  :mod:`~deblurcli.cli.models`, :mod:`~deblurcli.cli.make_pairs`, :mod:`~deblurcli.cli.evaluate`,
  :mod:`~deblurcli.cli.train` (with the hidden ``_train-worker``).

The CLI may import any library module (inside the command functions when it needs torch); no
library module imports :mod:`deblurcli.cli`.
"""

from deblurcli.cli.app import app, main

# Importing a command module registers its command; this order is the order of `deblur --help`.
from deblurcli.cli import score, fix, models, make_pairs, evaluate, train  # noqa: E402,F401,I001

__all__ = ["app", "main"]
