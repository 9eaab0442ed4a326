"""Secrets the hub must send (not only check), sealed at rest: the tokens it presents to OCPI partners.

A token a partner presents to us is only compared, so only its hash is stored. The token we present to a
partner must be sent, so it is *sealed*: encrypted and authenticated with Fernet (AES-128-CBC + HMAC-SHA256,
``cryptography``) under a key derived with HKDF-SHA256 from ``EVHUB_SECRETS_KEY``. The stored form is
``v1:<fernet token>``; a value without that prefix was stored before sealing and is read as it is (plain),
until it is written again (:meth:`Keyring.needs_reseal`).

``EVHUB_SECRETS_KEY`` holds one key or several, comma-separated: the first seals, every one unseals, so a key
is rotated by putting the new one first and keeping the old one until every row is sealed anew (the hub does
that at start). Unset, the process uses a built-in development key, which is no secret: production sets it.

One keyring per process (:func:`configure` at start, :func:`keyring` to use it): every hub in one process
shares it. Sealed values and keys are never logged; an error names what could not be unsealed and the setting,
never the value.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

PREFIX = "v1:"
"""Marks a sealed value (and its format: Fernet under an HKDF-SHA256 key)."""
SETTING = "EVHUB_SECRETS_KEY"
MIN_KEY_LENGTH = 16
DEVELOPMENT_KEY = "evhub-development-key-not-a-secret"
"""Used when EVHUB_SECRETS_KEY is unset, so a fresh machine (``make demo``) works; public, never for production."""
DEVELOPMENT_WARNING = f"outgoing partner tokens are sealed with the development key: set {SETTING}"
_SALT = b"evhub sealed secrets"
_INFO = b"evhub v1 fernet key"


class UnsealError(ValueError):
    """A sealed value that none of the configured keys opens (or that is damaged)."""


def parse_keys(value: str) -> list[str]:
    """The keys of an ``EVHUB_SECRETS_KEY`` value (comma-separated, blanks dropped); each must be long enough."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    for position, key in enumerate(keys, start=1):
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"key {position} is shorter than {MIN_KEY_LENGTH} characters")
    return keys


def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(key.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(derived))


@dataclass(frozen=True)
class Keyring:
    """The keys of one configuration: the first seals, all unseal."""

    keys: tuple[str, ...] = field(repr=False)
    _primary: Fernet = field(init=False, repr=False, compare=False)
    _all: MultiFernet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a keyring needs at least one key")
        fernets = [_fernet(k) for k in self.keys]
        object.__setattr__(self, "_primary", fernets[0])
        object.__setattr__(self, "_all", MultiFernet(fernets))

    @classmethod
    def from_setting(cls, value: str) -> Keyring:
        """The keyring of an ``EVHUB_SECRETS_KEY`` value; empty: the development key."""
        return cls(tuple(parse_keys(value)) or (DEVELOPMENT_KEY,))

    @property
    def development(self) -> bool:
        """True when the sealing key is the public development key."""
        return self.keys[0] == DEVELOPMENT_KEY

    def seal(self, plain: str) -> str:
        """``plain`` sealed with the first key (a new random IV each time: equal secrets look different)."""
        token = self._primary.encrypt_at_time(plain.encode("utf-8"), int(utcnow().timestamp()))
        return PREFIX + token.decode("ascii")

    def unseal(self, stored: str, what: str) -> str:
        """The secret in ``stored``; a value stored before sealing (no prefix) is returned as it is.

        ``what`` names the value for the error (e.g. ``outgoing token of OCPI partner 3``), never the value."""
        if not is_sealed(stored):
            return stored
        try:
            return self._all.decrypt(stored.removeprefix(PREFIX).encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise UnsealError(
                f"the {what} cannot be unsealed with the keys in {SETTING} (it was sealed with another key: "
                f"put that key back in {SETTING}, after the new one)"
            ) from None

    def needs_reseal(self, stored: str) -> bool:
        """Whether ``stored`` should be written again: plain (stored before sealing) or sealed with a key that is
        no longer the first (also when no key opens it: :meth:`unseal` then says so)."""
        if not is_sealed(stored):
            return True
        try:
            self._primary.decrypt(stored.removeprefix(PREFIX).encode("ascii"))
        except InvalidToken:
            return True
        return False


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (else it was stored in plain text before sealing)."""
    return stored.startswith(PREFIX)


_keyring = Keyring((DEVELOPMENT_KEY,))
_warned = False


def keyring() -> Keyring:
    """The process's keyring (the development key until :func:`configure` is called)."""
    return _keyring


def configure(secrets_key: str) -> Keyring:
    """Use the keys of ``secrets_key`` (the ``EVHUB_SECRETS_KEY`` value) in this process from now on."""
    global _keyring
    _keyring = Keyring.from_setting(secrets_key)
    return _keyring


def warn_if_development() -> bool:
    """Log :data:`DEVELOPMENT_WARNING` once per process when sealing uses the development key (at hub start)."""
    global _warned
    if not _keyring.development:
        return False
    if not _warned:
        _warned = True
        log.warning(DEVELOPMENT_WARNING)
    return True
