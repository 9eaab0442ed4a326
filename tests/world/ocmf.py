"""A signing meter for tests: a real ECDSA secp256r1 key pair (made with ``cryptography`` in the test run, never
read from outside the repository) that signs real OCMF messages (``OCMF|{payload}|{signature}``, the signature
ECDSA-secp256r1-SHA256 over the payload's exact bytes, hex DER, as the OCMF spec's default ``SA``/``SE``)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


@dataclass
class SigningMeter:
    """A meter with its own key; :meth:`reading` makes a signed Begin or End message."""

    serial: str = "MS-0001"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key_der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_key_hex(self) -> str:
        return self.public_key_der.hex()

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key_der).decode("ascii")

    def payload(self, tx: str, kwh: str, *, page: int, at: str, **extra: Any) -> str:
        """The payload JSON of one reading (``kwh`` written as the meter would, e.g. ``"1.000"``)."""
        reading = (
            f'{{"TM":"{at} S","TX":"{tx}","RV":{kwh},"RI":"1-b:1.8.0","RU":"kWh","RT":"AC","EF":"","ST":"G"}}'
        )
        head: dict[str, Any] = {
            "FV": "1.0", "GI": "ACME WALLBOX", "GS": "GW-0001", "GV": "1.2", "PG": f"T{page}",
            "MV": "ACME", "MM": "EM-1", "MS": self.serial, "MF": "1.0", "IS": True, "IL": "VERIFIED",
            "IF": ["RFID_PLAIN"], "IT": "ISO14443", "ID": "1F2D3A4B",
        }  # fmt: skip
        head.update(extra)
        return json.dumps(head, separators=(",", ":"))[:-1] + f',"RD":[{reading}]}}'

    def sign(self, payload: str, *, embed_key: bool = False) -> str:
        """``OCMF|payload|signature`` (and the public key as a 4th section with ``embed_key``)."""
        signature = self.key.sign(payload.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        text = f'OCMF|{payload}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{signature.hex()}"}}'
        return f"{text}|{self.public_key_hex}" if embed_key else text

    def reading(
        self, tx: str, kwh: str, *, page: int = 1, at: str = "2026-03-02T08:00:00,000+0000", **extra: Any
    ) -> str:
        """A signed OCMF message of one reading: ``tx`` ``"B"`` (begin) or ``"E"`` (end)."""
        return self.sign(self.payload(tx, kwh, page=page, at=at, **extra))
