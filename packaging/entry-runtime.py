"""PyInstaller entry script of the runtime bundle (no torch, no Qt): its executable starts here."""

import sys

from inspector.launcher import runtime_main

if __name__ == "__main__":
    sys.exit(runtime_main())
