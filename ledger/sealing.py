"""Secrets the ledger must keep but never show: sealed with the service's key before they enter
an event, so the audit feed and exports carry only ciphertext (Fernet: AES-128-CBC + HMAC)."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken

from ledger.settings import Settings


class SealingUnavailable(Exception):
    """No usable `LEDGER_SECRET_KEY` is configured."""


def new_key() -> str:
    """A fresh key for `LEDGER_SECRET_KEY`."""
    return Fernet.generate_key().decode()


def _fernet(settings: Settings) -> Fernet:
    if settings.secret_key is None:
        raise SealingUnavailable("LEDGER_SECRET_KEY is not set (see `ledger secret-key`)")
    try:
        return Fernet(settings.secret_key.get_secret_value().encode())
    except ValueError:
        raise SealingUnavailable(
            "LEDGER_SECRET_KEY is not a key of `ledger secret-key` (32 url-safe base64 bytes)"
        ) from None


def sealer(settings: Settings) -> Callable[[str], str]:
    """Seals a secret with the configured key (`SealingUnavailable` without one)."""
    fernet = _fernet(settings)
    return lambda secret: fernet.encrypt(secret.encode()).decode()


def unseal(settings: Settings, sealed: str) -> str:
    """The secret `sealer` sealed (`SealingUnavailable` if the key cannot open it)."""
    try:
        return _fernet(settings).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SealingUnavailable("LEDGER_SECRET_KEY cannot open this secret") from None
