"""Opaque secrets (bearer tokens, invitation links, integration tokens): random, stored only as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

# Prefixes tell a leaked secret's kind at a glance (and let secret scanners find them).
BEARER_PREFIX = "fst_"
INVITATION_PREFIX = "fsi_"
INTEGRATION_PREFIX = "fsk_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
