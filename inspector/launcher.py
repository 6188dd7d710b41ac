"""Entry point of the bundled app: no arguments opens the window; ``--self-test`` and
``--version`` answer and exit; anything else is the command line (``inspector train ...``)."""

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


if __name__ == "__main__":
    sys.exit(main())
