"""Signed unsubscribe tokens: who (email), which list, which language; no expiry. And the
short-lived form nonces that resubscribing needs.

Links in old issues must keep working, so tokens never expire; keys can be rotated
(old keys stay valid for verifying via NEWSLETTER_OLD_SECRETS). A token is
`base64url(payload) "." base64url(HMAC-SHA256(key, domain || payload))`; verification is
constant-time and a bad token says nothing about whether an address is on the list.

A token only ever unsubscribes. Undoing that needs more than a link anyone may hold for years
(a forwarded email, a mail archive): the confirmation page issues a form nonce, signed for that
address and list with a time, which the resubscribe POST must bring back within minutes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass

from newsletter.audience.secrets import SigningKeys

_DOMAIN = b"newsletter/unsubscribe/v1\n"
_NONCE_DOMAIN = b"newsletter/resubscribe-nonce/v1\n"
MAX_TOKEN_LEN = 2048
#: How long a resubscribe form nonce is honoured after the page issued it.
NONCE_MAX_AGE = 15 * 60
_CLOCK_SKEW = 60


class InvalidToken(Exception):
    """Tampered, truncated, foreign or malformed. Deliberately says no more than that."""


@dataclass(frozen=True)
class TokenData:
    email: str
    list_id: str
    language: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()


def make_token(keys: SigningKeys, email: str, list_id: str, language: str = "en") -> str:
    """A URL-safe token for (email, list). Always signed with the current key."""
    payload = "\n".join((list_id, email, language)).encode("utf-8")
    return f"{_b64(payload)}.{_b64(_sign(keys.current, payload))}"


def read_token(keys: SigningKeys, token: str, *, list_id: str | None = None) -> TokenData:
    """Verify `token` against the current and old keys; raise InvalidToken otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LEN or token.count(".") != 1:
        raise InvalidToken("invalid token")
    body, sig = token.split(".")
    try:
        payload, signature = _unb64(body), _unb64(sig)
    except (binascii.Error, ValueError):
        raise InvalidToken("invalid token") from None
    if _b64(payload) != body or _b64(signature) != sig:
        # the decoder skips stray characters and ignores padding bits: only the one canonical
        # spelling of a token is valid, so a tampered link never verifies
        raise InvalidToken("invalid token")
    ok = False
    for key in keys.all:  # check every key so timing does not reveal which one matched
        ok |= hmac.compare_digest(_sign(key, payload), signature)
    if not ok:
        raise InvalidToken("invalid token")
    try:
        found_list, email, language = payload.decode("utf-8").split("\n")
    except (UnicodeDecodeError, ValueError):
        raise InvalidToken("invalid token") from None
    if list_id is not None and not hmac.compare_digest(found_list.encode(), list_id.encode()):
        raise InvalidToken("invalid token")
    return TokenData(email=email, list_id=found_list, language=language)


def _nonce_mac(key: bytes, email: str, list_id: str, issued: int) -> bytes:
    payload = "\n".join((list_id, email.strip().lower(), str(issued))).encode("utf-8")
    return hmac.new(key, _NONCE_DOMAIN + payload, hashlib.sha256).digest()


def make_form_nonce(keys: SigningKeys, email: str, list_id: str, *, issued: float | None = None) -> str:
    """A nonce for the resubscribe form of (email, list), stamped with the time it was issued."""
    stamp = int(time.time() if issued is None else issued)
    return f"{stamp}.{_b64(_nonce_mac(keys.current, email, list_id, stamp))}"


def form_nonce_is_fresh(keys: SigningKeys, nonce: str, email: str, list_id: str, *,
                        max_age: int = NONCE_MAX_AGE, clock: float | None = None) -> bool:
    """True if `nonce` was issued for (email, list) by one of our keys less than `max_age` seconds ago."""
    if not isinstance(nonce, str) or len(nonce) > 100 or nonce.count(".") != 1:
        return False
    stamp_text, mac_text = nonce.split(".")
    if not stamp_text.isascii() or not stamp_text.isdigit() or len(stamp_text) > 12:
        return False
    stamp = int(stamp_text)
    age = (time.time() if clock is None else clock) - stamp
    if age > max_age or age < -_CLOCK_SKEW:
        return False
    try:
        mac = _unb64(mac_text)
    except (binascii.Error, ValueError):
        return False
    ok = False
    for key in keys.all:
        ok |= hmac.compare_digest(_nonce_mac(key, email, list_id, stamp), mac)
    return ok
