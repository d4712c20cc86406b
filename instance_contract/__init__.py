"""The contract between the Foundry (control plane) and the instance runtime: the bundle format (bundle_format) and
the models the runtime reads from a bundle (schema: the instance manifest and agent specs; bundle_documents: the
graph definition and the backend tool config). It depends on pydantic alone, so the runtime image carries nothing of
the control plane.
"""
