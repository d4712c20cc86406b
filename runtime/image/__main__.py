"""`python -m runtime.image [build|base] [--tag TAG]` (or `./dev image ...`): build the runtime image with podman.

    build   the stand-in base image if it is missing or stale, then runtime/Dockerfile (the default)
    base    only the stand-in base image

Exit codes: 0 built, 1 a step failed (the message names it), 2 usage or podman/runc/mmdebstrap missing.
"""

from __future__ import annotations

import argparse
import sys

from runtime.image.podman import IMAGE_TAG, INSTALL_HINT, ImageError, build_image, ensure_base, missing_tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev image", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="build", choices=["build", "base"])
    parser.add_argument("--tag", default=IMAGE_TAG, help=f"tag of the built image (default: {IMAGE_TAG})")
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"./dev image: {', '.join(missing)} not found: {INSTALL_HINT}", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(f"==> {line}", file=sys.stderr)

    try:
        if args.command == "base":
            ensure_base(log, stream=True)
        else:
            build_image(args.tag, log, stream=True)
    except ImageError as exc:
        print(f"./dev image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
