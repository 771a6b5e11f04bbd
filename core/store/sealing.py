"""Optional encryption at rest of what can identify a person.

With a key (`CRMRULES_STORE_KEY`, any passphrase), the store encrypts event payloads, entity state, decisions
and outbox actions (Fernet: AES with an HMAC), and keeps identity values (emails, phone numbers, CRM ids) only
as keyed hashes, so lookups by email still work while the file alone reveals nobody. Without a key the store
is plain SQLite that any tool can read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "enc1:"


class Sealer:
    def __init__(self, passphrase: str | None):
        self.enabled = bool(passphrase)
        if passphrase:
            secret = passphrase.encode("utf-8")
            self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"crmrules-seal|" + secret).digest()))
            self._mac = hashlib.sha256(b"crmrules-blind|" + secret).digest()

    def seal(self, text: str) -> str:
        if not self.enabled:
            return text
        return PREFIX + self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def open(self, text: str) -> str:
        if not text.startswith(PREFIX):
            return text
        if not self.enabled:
            raise PermissionError("this store is encrypted: set CRMRULES_STORE_KEY to read it")
        try:
            return self._fernet.decrypt(text[len(PREFIX):].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise PermissionError("CRMRULES_STORE_KEY does not open this store") from None

    def blind(self, value: str) -> str:
        if not self.enabled:
            return value
        return "h:" + hmac.new(self._mac, value.encode("utf-8"), hashlib.sha256).hexdigest()[:40]
