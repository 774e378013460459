"""The HTTP API: `create_app(ctx)`, authentication, routes."""

from api.app import AppContext, create_app
from api.auth import KeyRing, Principal, hash_key

__all__ = ["AppContext", "KeyRing", "Principal", "create_app", "hash_key"]
