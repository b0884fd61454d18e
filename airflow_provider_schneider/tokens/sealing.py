"""What the shared token tiers store: a token's identity (:class:`CacheKey`) and its sealed form.

Kept apart from the tiers because it is the one place that decides what an entry is and who can read it:
Fernet with a key derived (HKDF-SHA256) from the client secret and the cache key, so an entry is useless
without the secret, and rotating the secret orphans old entries by itself. Anything that does not open
(corrupt, truncated, foreign, too large) is ``None``: a miss for the tier, never an error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airflow_provider_schneider.config.settings import SchneiderSettings
from airflow_provider_schneider.tokens.token import Token

# The tiers' logger, as before this module was split off: logging configuration keeps matching.
log = logging.getLogger("airflow_provider_schneider.tokens.tiers")

_KDF_SALT = b"airflow-provider-schneider/token-cache/v1"
#: Largest sealed entry written and read (a sealed JWT is a few KB). A token whose entry would be larger is
#: not cached (with a warning) rather than written and then never read back.
MAX_ENTRY_BYTES = 256 * 1024


@dataclass(frozen=True)
class CacheKey:
    """Identity of a token: token URL + client id + scope. Same credentials share; others never do."""

    token_url: str
    client_id: str
    scope: str

    @property
    def digest(self) -> str:
        raw = "\n".join((self.token_url, self.client_id, self.scope)).encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    @classmethod
    def for_settings(cls, settings: SchneiderSettings) -> CacheKey:
        return cls(settings.token_url, settings.client_id or "", settings.scope or "")


class TokenCipher:
    """Authenticated encryption of cache entries, keyed by the client secret and the cache key."""

    def __init__(self, client_secret: str, key: CacheKey):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_KDF_SALT, info=key.digest.encode()).derive(
            client_secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        #: Tells secrets apart in process memory without holding or revealing them.
        self.fingerprint = hashlib.sha256(b"fingerprint:" + derived).hexdigest()[:16]

    def seal(self, token: Token) -> str | None:
        """The encrypted entry, or ``None`` (with a warning) when it would be too large to be read back."""
        blob = self._fernet.encrypt(json.dumps(token.to_json()).encode()).decode()
        if len(blob) > MAX_ENTRY_BYTES:
            log.warning(
                "Schneider token too large to cache (%d bytes sealed, limit %d): each process requests its own",
                len(blob),
                MAX_ENTRY_BYTES,
            )
            return None
        return blob

    def open(self, blob: str | bytes | None) -> Token | None:
        """The token in ``blob``, or ``None`` if it is empty, corrupt, truncated or sealed with another key."""
        if not blob or len(blob) > MAX_ENTRY_BYTES:
            return None
        try:
            data = json.loads(self._fernet.decrypt(blob.encode() if isinstance(blob, str) else blob))
        except (InvalidToken, ValueError, TypeError):
            return None
        return Token.from_json(data)
