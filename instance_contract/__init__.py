"""The contract between the Foundry (control plane) and the instance runtime: the bundle format and the models the
runtime reads from a bundle. It depends on pydantic alone, so the runtime image carries nothing of the control plane.
"""
