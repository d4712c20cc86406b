"""The top-level `constructs/` folder must never shadow the `constructs` library that aws-cdk-lib imports."""

from __future__ import annotations

import re
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


def _readme_map_paths() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Where things live", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [path for row in rows for path in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_every_path_in_the_readme_package_map_exists() -> None:
    missing = [path for path in _readme_map_paths() if not (REPO_ROOT / path).exists()]
    assert not missing, f"README's 'Where things live' names paths that do not exist: {missing}"


def test_every_foundry_subpackage_has_a_line_in_the_readme_package_map() -> None:
    subpackages = sorted(f"foundry/{p.parent.name}/" for p in (REPO_ROOT / "foundry").glob("*/__init__.py"))
    assert subpackages, "foundry/ has subpackages"
    unmapped = sorted(set(subpackages) - set(_readme_map_paths()))
    assert not unmapped, f"add a line to README's 'Where things live' for {unmapped}"


def test_every_foundry_subpackage_says_its_job_and_what_it_may_import() -> None:
    import importlib

    for init in sorted((REPO_ROOT / "foundry").glob("*/__init__.py")):
        package = importlib.import_module(f"foundry.{init.parent.name}")
        doc = package.__doc__ or ""
        assert doc.strip(), f"{package.__name__} has no docstring"
        assert "import" in doc, f"{package.__name__}'s docstring does not say what it may import"
