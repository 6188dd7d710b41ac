"""PyInstaller entry script: the bundled app's executable starts here."""

import sys

from inspector.launcher import main

if __name__ == "__main__":
    sys.exit(main())
