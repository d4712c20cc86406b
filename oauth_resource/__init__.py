"""The resource-server side of OAuth 2.1 for our MCP endpoints: bearer JWTs checked against the issuer's JWKS.

Shared by the instance runtime and the Foundry MCP server (both import it; it imports neither). It depends on the MCP
SDK (its `TokenVerifier` protocol and `AccessToken`), PyJWT with `cryptography`, and httpx2 (which the SDK brings).
"""
