"""Keyed hashes: what the store keeps instead of a client's IP address or a forgotten email.

A consent record must show who asked (GDPR art. 7(1): the controller must be able to
demonstrate consent), but a raw IP address is itself personal data, kept for years in
every backup. An HMAC of it under NEWSLETTER_SECRET proves a later claim ("this request
came from 198.51.100.7": hash it and compare) without the store revealing any address to
whoever reads it; a plain hash would not do, since the 2^32 IPv4 addresses are hashed in
seconds. The same goes for a forgotten person's address (art. 17): the store keeps only a
keyed hash, enough to recognise the address if an import or a form brings it back, and
nothing to read.

Keys rotate like the signing keys: a hash is checked under the current key and every key in
NEWSLETTER_OLD_SECRETS, so a rotation does not forget who was forgotten.
"""

from __future__ import annotations

import hashlib
import hmac

from newsletter.audience.secrets import SigningKeys
from newsletter.store.db import email_key

_IP = b"newsletter/client-ip/v1\n"
_FORGET = b"newsletter/forgotten/v1\n"


def ip_hash(keys: SigningKeys, ip: str) -> str:
    """The client address as a consent record keeps it (hex, under the current key)."""
    return hmac.new(keys.current, _IP + ip.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]


def forget_hashes(keys: SigningKeys, email: str) -> tuple[str, ...]:
    """The keyed hashes of an address under every key (current first)."""
    data = _FORGET + email_key(email).encode("utf-8")
    return tuple(hmac.new(k, data, hashlib.sha256).hexdigest() for k in keys.all)
