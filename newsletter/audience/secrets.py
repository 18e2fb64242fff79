"""Secrets come from environment variables only: never from files, never printed or stored.

    NEWSLETTER_SECRET         key that signs unsubscribe tokens (required for real sends)
    NEWSLETTER_OLD_SECRETS    earlier keys, comma-separated, still accepted when verifying
    NEWSLETTER_SMTP_PASSWORD  password for the SMTP relay
    SENDGRID_API_KEY          API key for the sendgrid backend
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from newsletter.errors import MissingSecret

SECRET_VAR = "NEWSLETTER_SECRET"
OLD_SECRETS_VAR = "NEWSLETTER_OLD_SECRETS"
SMTP_PASSWORD_VAR = "NEWSLETTER_SMTP_PASSWORD"
SENDGRID_KEY_VAR = "SENDGRID_API_KEY"

#: Used only where no mail leaves the machine (dry runs, the outbox), and always announced.
DEVELOPMENT_KEY = "newsletter-development-key--not-secret--do-not-use-for-real-sends"


@dataclass(frozen=True, repr=False)
class SigningKeys:
    current: bytes
    old: tuple[bytes, ...]
    is_development: bool

    def __repr__(self) -> str:  # never show key material, even in a traceback
        return f"SigningKeys(old={len(self.old)}, is_development={self.is_development})"

    @property
    def all(self) -> tuple[bytes, ...]:
        return (self.current, *self.old)


#: Shortest accepted signing key, current or old: a short key can be guessed offline from one token.
MIN_KEY_LENGTH = 16


def signing_keys(*, allow_development: bool = False) -> SigningKeys:
    """The token keys from the environment; the development key only if allowed and unset.

    Every key that verifies tokens must be as strong as the current one: an old key that can be
    guessed forges links just as well. Errors name the variable and the key's position, never a value.
    """
    current = os.environ.get(SECRET_VAR, "").strip()
    listed = [k.strip() for k in os.environ.get(OLD_SECRETS_VAR, "").split(",") if k.strip()]
    for i, key in enumerate(listed, 1):
        if len(key) < MIN_KEY_LENGTH:
            raise MissingSecret(f"{OLD_SECRETS_VAR}: key {i} of {len(listed)} is too short: every key, current or "
                                f"old, needs at least {MIN_KEY_LENGTH} characters (remove it once its links "
                                "no longer matter, or keep it only if it is as strong as the others)")
    old = tuple(k.encode() for k in listed)
    if current:
        if len(current) < MIN_KEY_LENGTH:
            raise MissingSecret(f"{SECRET_VAR} is too short: use at least {MIN_KEY_LENGTH} characters "
                                "(32 random bytes is better)")
        return SigningKeys(current.encode(), old, False)
    if allow_development:
        return SigningKeys(DEVELOPMENT_KEY.encode(), old, True)
    raise MissingSecret(f"{SECRET_VAR} is not set: real sends need a signing key for unsubscribe links "
                        f"(e.g. export {SECRET_VAR}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'))")


def env_secret(var: str) -> str | None:
    value = os.environ.get(var, "")
    return value or None
