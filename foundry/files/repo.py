"""Where the repository is: the folder that holds `foundry/`, `agents/`, `node_modules/` and `build/`.

Every default path of the control plane starts here, so a module can move inside the package without its paths
moving with it.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
"""The `foundry` package itself."""
REPO_ROOT = PACKAGE_DIR.parent
BUILD_DIR = REPO_ROOT / "build"
