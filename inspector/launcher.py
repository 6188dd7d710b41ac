"""Entry points of the bundled apps. The full bundle: no arguments opens the window; ``--self-test``
and ``--version`` answer and exit; anything else is the command line (``inspector train ...``).
The runtime bundle (a line PC's: no torch, no Qt): the same, except that no arguments prints the
help and ``--self-test [SET]`` scores its carried self-test set (``inspector/runtime_selftest.py``)."""

from __future__ import annotations

import multiprocessing
import sys


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()  # a frozen app must not re-run itself in spawned children
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--self-test"]:
        from inspector.gui.selftest import run

        return run()
    from inspector.cli import main as cli_main

    return cli_main(argv or ["gui"])


def runtime_main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--self-test"] and len(argv) <= 2:
        from inspector.runtime_selftest import run

        return run(argv[1] if len(argv) == 2 else None)
    from inspector.cli import main as cli_main

    return cli_main(argv or ["--help"])


if __name__ == "__main__":
    sys.exit(main())
