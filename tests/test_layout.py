"""The top-level `constructs/` folder must never shadow the `constructs` library that aws-cdk-lib imports."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_constructs_folder_has_no_init_file() -> None:
    assert not (REPO_ROOT / "constructs" / "__init__.py").exists()


def test_constructs_folder_modules_do_not_reuse_library_names() -> None:
    import constructs as library

    library_dirs = [p for p in library.__path__ if "site-packages" in p]
    library_names = {p.stem for d in library_dirs for p in __import__("pathlib").Path(d).iterdir()}
    ours = {p.stem for p in (REPO_ROOT / "constructs").glob("*.py")}
    assert not ours & library_names


def test_the_library_and_our_modules_both_import_from_the_repo_root() -> None:
    ours = sorted(p.stem for p in (REPO_ROOT / "constructs").glob("*.py"))
    code = "import constructs; constructs.Construct; import aws_cdk; " + "; ".join(
        f"import constructs.{name}" for name in ours
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
