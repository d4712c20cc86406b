"""cdk.json's app command keeps Python's `assert` statements: the interpreter it names runs without -O."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from tests.conftest import REPO_ROOT


def test_the_cdk_app_command_runs_python_without_optimisation_flags() -> None:
    argv = shlex.split(json.loads((REPO_ROOT / "cdk.json").read_text())["app"])
    assert argv[-1] == "app.py"
    probe = "import sys; print(sys.flags.optimize)"
    env = {**os.environ, "PATH": f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    # The same interpreter and flags cdk runs app.py with, asked how it was started.
    out = subprocess.run([*argv[:-1], "-c", probe], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0", f"cdk.json runs {argv!r}, which strips assert statements"
