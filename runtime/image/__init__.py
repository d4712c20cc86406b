"""Building the runtime image without a Docker engine (podman, and a local stand-in for the base image).

Not part of the image (.dockerignore leaves runtime/image/ out): it builds the image, it does not run in it.
"""
