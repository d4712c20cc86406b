"""runtime/image/podman.py's pure parts: the base image name podman stores, and when the stand-in is rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.image import podman
from runtime.image.podman import ImageError, base_image_name, base_recipe


@pytest.mark.parametrize(
    ("from_line", "stored_as"),
    [
        ("FROM python:3.11-slim-bookworm", "docker.io/library/python:3.11-slim-bookworm"),
        ("FROM library/python:3.11", "docker.io/library/python:3.11"),
        ("FROM public.ecr.aws/docker/library/python:3.11-slim", "public.ecr.aws/docker/library/python:3.11-slim"),
        ("FROM localhost/base:1 AS build", "localhost/base:1"),
        ("FROM registry:5000/team/python:3.11", "registry:5000/team/python:3.11"),
    ],
)
def test_the_base_image_is_tagged_with_the_name_podman_resolves_the_from_line_to(
    from_line: str, stored_as: str, tmp_path: Path
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"# comment\n{from_line}\nRUN true\n")
    assert base_image_name(dockerfile) == stored_as


def test_the_real_dockerfile_names_the_slim_bookworm_python_that_the_stand_in_replaces() -> None:
    assert base_image_name() == "docker.io/library/python:3.11-slim-bookworm"


def test_a_dockerfile_without_from_is_an_error_naming_the_file(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("RUN true\n")
    with pytest.raises(ImageError, match=f"{dockerfile}: no FROM line"):
        base_image_name(dockerfile)


def test_the_base_recipe_is_stable_and_changes_with_the_mirror_or_the_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = tmp_path / "debian.sources"
    text = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"
    sources.write_text(text)
    recipe = base_recipe(sources)
    assert base_recipe(sources) == recipe
    assert base_recipe(None) != recipe
    sources.write_text(text.replace("deb.debian.org", "mirror.example"))
    assert base_recipe(sources) != recipe
    sources.write_text(text)
    monkeypatch.setattr(podman, "BASE_PACKAGES", (*podman.BASE_PACKAGES, "curl"))
    assert base_recipe(sources) != recipe
