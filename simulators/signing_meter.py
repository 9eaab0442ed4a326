"""A simulated signing (Eichrecht) meter: its own ECDSA secp256r1 key pair and real OCMF messages (pure: no I/O).

A charger with one signs its energy register at a transaction's Begin and End as
``OCMF|{payload}|{signature}``: the payload one reading (``TX`` ``B`` or ``E``, the register in kWh, the
simulated time), the signature ECDSA-secp256r1-SHA256 over the payload's exact bytes, hex DER (OCMF's default
``SA``/``SD``). On the wire it is hex-encoded in a 1.6 ``format: SignedData`` sampled value ("encoded as hex
data") and base64-encoded in a 2.0.1 ``signedMeterValue.signedMeterData`` ("Base64 encoded").

The key is made fresh for every meter (:class:`SigningMeter`'s default), so the signatures differ run to run;
the readings do not. The operator gives the hub the meter's :attr:`SigningMeter.public_key_hex` (the DER
SubjectPublicKeyInfo, as a meter's label shows it).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

BEGIN = "B"
END = "E"
SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"


def ocmf_time(at: datetime) -> str:
    """An OCMF ``TM``: local-time ISO 8601 with comma milliseconds and a ``+hhmm`` offset, then the time
    status (``S``: synchronised); written in UTC."""
    utc = at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S,") + f"{utc.microsecond // 1000:03d}+0000 S"


@dataclass
class SigningMeter:
    """One meter with its own key pair; :meth:`sign` makes a signed Begin or End reading."""

    serial: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    _page: int = 0

    @property
    def public_key_der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def public_key_hex(self) -> str:
        return self.public_key_der.hex()

    def payload(self, tx: str, at: datetime, wh: float, token: str, page: int) -> str:
        """The OCMF payload JSON of one reading: the register ``wh`` as kWh with four decimals."""
        head = {
            "FV": "1.0", "GI": "EVHUB-SIM", "GS": self.serial, "GV": "1.0", "PG": f"T{page}",
            "MV": "evhub-sim", "MM": "SIM-EM", "MS": self.serial, "MF": "1.0", "IS": True, "IL": "VERIFIED",
            "IF": ["RFID_PLAIN"], "IT": "ISO14443", "ID": token,
        }  # fmt: skip
        reading = (
            f'{{"TM":"{ocmf_time(at)}","TX":"{tx}","RV":{wh / 1000:.4f},"RI":"1-b:1.8.0","RU":"kWh",'
            f'"RT":"AC","EF":"","ST":"G"}}'
        )
        return json.dumps(head, separators=(",", ":"))[:-1] + f',"RD":[{reading}]}}'

    def sign(self, tx: str, at: datetime, wh: float, token: str) -> str:
        """``OCMF|payload|signature`` of the register ``wh`` (Wh) at ``at``; ``tx`` :data:`BEGIN` or
        :data:`END`. Each message gets the meter's next pagination number."""
        self._page += 1
        payload = self.payload(tx, at, wh, token, self._page)
        signature = self.key.sign(payload.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        return f'OCMF|{payload}|{{"SA":"{SIGNATURE_ALGORITHM}","SD":"{signature.hex()}"}}'

    def encoded(self, version: str, tx: str, at: datetime, wh: float, token: str) -> str:
        """:meth:`sign`, encoded as OCPP ``version`` carries it: hex (1.6), base64 (2.0.1)."""
        text = self.sign(tx, at, wh, token).encode("utf-8")
        return text.hex() if version == "1.6" else base64.b64encode(text).decode("ascii")
