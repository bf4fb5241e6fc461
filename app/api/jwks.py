"""``/.well-known/jwks.json``: the public keys that verify our access tokens (RFC 7517)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.runtime import runtime

blueprint = Blueprint("wellknown", __name__, url_prefix="/.well-known")


@blueprint.get("/jwks.json")
def jwks():
    response = jsonify(runtime().tokens.keys.jwks())
    # Public and the same for everyone; short caching lets rotated keys appear quickly.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
