"""Signed meter data: is what a session's charger signed at its Begin and End really signed by its meter, and
does it agree with the plain register? (pure: no database, no clock, no network).

Chargers under the German Eichrecht sign their meter readings, mostly in OCMF (Open Charge Metering Format,
``OCMF|{payload}|{signature}``), sent as a 1.6 ``format: SignedData`` sampled value ("encoded as hex data") or
a 2.0.1 ``signedMeterValue.signedMeterData`` ("Base64 encoded"), or as the plain text. The format and the
ECDSA check belong to `pyocmf <https://pypi.org/project/pyocmf/>`_ (unofficial, alpha: its README sends
official verification to the S.A.F.E. Transparenzsoftware), kept behind this module so it can be swapped.

:func:`verify` gives one :class:`Verification`:

* ``invalid``: an OCMF message that does not parse, a signature that does not match the public key, an
  Eichrecht error between Begin and End (meter status not OK, error flag, units or registers differ, the
  value or the time goes back, serial numbers differ ...), or a signed reading that differs from the plain
  register by more than :data:`kernel.meter_reading.RESET_TOLERANCE_WH`;
* ``unverifiable``: the data is not OCMF, a signed Begin or End is missing, there is no public key (neither
  given nor embedded as a 4th OCMF section), the key cannot be read, the algorithm is not supported, or the
  ``cryptography`` library is missing;
* ``verified``: none of these.

Invalid wins over unverifiable. Verification is information, never a reason to stop billing.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pyocmf import OCMF as OcmfMessage
from pyocmf import PublicKey, PyOCMFError, Reading, SignatureMethod, SignatureVerificationError, SpecWarning
from pyocmf.enums.reading import MeterReadingReason, is_end_reason

from kernel.energy import format_kwh
from kernel.meter_reading import RESET_TOLERANCE_WH

VERIFIED = "verified"
UNVERIFIABLE = "unverifiable"
INVALID = "invalid"
OCMF = "OCMF"
UNKNOWN_ENCODING = "UNKNOWN"
"""The encoding of signed data that is not OCMF (this module reads no other format)."""

_OCMF_PREFIX = "OCMF|"
_WH_PER = {"kwh": Decimal(1000), "wh": Decimal(1)}


@dataclass(frozen=True, slots=True)
class SignedReading:
    """A signed meter value as the charger sent it (byte-exact) and the plain register (Wh) at that point
    (None: unknown)."""

    data: str
    plain_wh: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of :func:`verify`. ``public_key`` is the key the signatures were checked with (base64 DER),
    ``key_embedded`` whether it came from the OCMF message itself; ``begin_value``/``end_value`` the signed
    register readings as the meter wrote them (``"1.234 kWh"``)."""

    status: str
    reason: str | None
    encoding: str
    encoding_version: str | None = None
    public_key: str | None = None
    key_embedded: bool = False
    begin_value: str | None = None
    end_value: str | None = None


def ocmf_text(raw: str) -> str | None:
    """The OCMF string in ``raw``: as it is, hex-encoded (OCPP 1.6) or base64-encoded (OCPP 2.0.1); None when
    it is none of these."""
    text = raw.strip()
    if text.startswith(_OCMF_PREFIX):
        return text
    decoded = _bytes(text)
    if decoded is None:
        return None
    try:
        out = decoded.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return out if out.startswith(_OCMF_PREFIX) else None


def _bytes(text: str) -> bytes | None:
    """``text`` decoded as hex, else as base64; None when it is neither."""
    compact = "".join(text.split())
    try:
        return bytes.fromhex(compact)
    except ValueError:
        pass
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def as_base64(raw: str) -> str:
    """Signed data as OCPI's ``signed_data`` wants it ("Blob of signed data, base64 encoded"): an OCMF string
    (plain, hex or base64) as the base64 of its text; other data hex-decoded, or kept when it is base64
    already, else the base64 of its text."""
    text = ocmf_text(raw)
    if text is not None:
        return base64.b64encode(text.encode("utf-8")).decode("ascii")
    compact = "".join(raw.split())
    try:
        return base64.b64encode(bytes.fromhex(compact)).decode("ascii")
    except ValueError:
        pass
    try:
        base64.b64decode(compact, validate=True)
        return compact
    except (binascii.Error, ValueError):
        return base64.b64encode(raw.encode("utf-8")).decode("ascii")


def public_key_base64(key: str | None) -> str | None:
    """A DER public key given as hex or base64, as base64 (OCPI ``public_key``: "base64 encoded"); None when
    it is neither."""
    if not key or not key.strip():
        return None
    compact = "".join(key.split())
    try:
        return base64.b64encode(bytes.fromhex(compact)).decode("ascii")
    except ValueError:
        pass
    try:
        return base64.b64encode(base64.b64decode(compact, validate=True)).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def describe(status: str | None, reason: str | None) -> str | None:
    """The outcome as a person reads it: ``verified``, ``unverifiable (reason)``, ``INVALID (reason)``; None
    when nothing was verified (no signed data)."""
    if not status:
        return None
    word = "INVALID" if status == INVALID else status
    return f"{word} ({reason})" if reason and status != VERIFIED else word


def _parse(text: str) -> OcmfMessage:
    """The OCMF message, read as leniently as the Transparenzsoftware (spec deviations it accepts are not
    errors, and their warnings are not logged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpecWarning)
        return OcmfMessage.from_string(text, strict=False)


def _wh(reading: Reading) -> Decimal | None:
    unit = str(reading.RU or "").lower()
    if reading.RV is None or unit not in _WH_PER:
        return None
    return Decimal(reading.RV) * _WH_PER[unit]


def _relative(reading: Reading) -> bool:
    """Whether the register counts per transaction or is loss-compensated (OCMF B1-B3, C1-C3, 98): not the
    plain register itself, so only its difference is compared."""
    return reading.RI is not None and (reading.RI.is_transaction_register or reading.RI.is_loss_compensated)


def _pick(message: OcmfMessage, begin: bool) -> Reading | None:
    """The message's energy reading of the transaction's begin (TX ``B``) or end (``E``, ``L``, ``R``, ``A``,
    ``P``): a law-relevant plain register first."""
    found = [
        r
        for r in message.payload.RD
        if (r.TX == MeterReadingReason.BEGIN if begin else is_end_reason(r.TX)) and _wh(r) is not None
    ]
    found.sort(key=lambda r: (_relative(r), not (r.RI is not None and r.RI.is_law_relevant)))
    return found[0] if found else None


def _text(reading: Reading | None) -> str | None:
    return f"{reading.RV} {reading.RU}" if reading is not None else None


def _kwh(wh: Decimal) -> str:
    return f"{format_kwh(wh / 1000)} kWh"


def _compare(
    b: Reading | None, e: Reading | None, plain_b: Decimal | None, plain_e: Decimal | None
) -> list[str]:
    """Where the signed readings disagree with the plain register beyond the reset tolerance: each reading,
    or only the energy between them for a per-transaction or loss-compensated register."""
    signed_b = _wh(b) if b is not None else None
    signed_e = _wh(e) if e is not None else None
    if any(r is not None and _relative(r) for r in (b, e)):
        if signed_b is None or signed_e is None or plain_b is None or plain_e is None:
            return []
        signed, plain = signed_e - signed_b, plain_e - plain_b
        if abs(signed - plain) <= RESET_TOLERANCE_WH:
            return []
        return [f"the signed energy ({_kwh(signed)}) differs from the plain register's ({_kwh(plain)})"]
    out: list[str] = []
    for nature, signed_wh, plain_wh in (("Begin", signed_b, plain_b), ("End", signed_e, plain_e)):
        if signed_wh is not None and plain_wh is not None and abs(signed_wh - plain_wh) > RESET_TOLERANCE_WH:
            out.append(
                f"the signed {nature} reading ({_kwh(signed_wh)}) differs from the plain register "
                f"({_kwh(plain_wh)})"
            )
    return out


def _version(messages: list[OcmfMessage]) -> str | None:
    for m in messages:
        if m.payload.FV:
            return str(m.payload.FV)
    return None


def _signatures(messages: dict[str, OcmfMessage], key: str) -> tuple[list[str], list[str]]:
    """(invalid, unverifiable) reasons of checking each message's signature with ``key``."""
    invalid: list[str] = []
    mismatched: list[str] = []
    try:
        PublicKey.from_string(key)
    except ImportError:
        return [], ["signature check unavailable (the cryptography library is not installed)"]
    except (PyOCMFError, ValueError) as e:
        return [], [f"the public key cannot be read ({e})"]
    for nature, message in messages.items():
        if not isinstance(message.signature.SA, SignatureMethod):
            return [], [f"unsupported signature algorithm {message.signature.SA!r}"]
        try:
            ok = message.verify_signature(key)
        except ImportError:
            return [], ["signature check unavailable (the cryptography library is not installed)"]
        except SignatureVerificationError as e:
            invalid.append(f"{nature}: the signature cannot be checked with the public key ({e})")
            continue
        if not ok:
            mismatched.append(nature)
    if mismatched:
        which = " and ".join(mismatched)
        invalid.append(f"the signature of {which} does not match (altered data or another meter's key)")
    return invalid, []


def verify(
    begin: SignedReading | None, end: SignedReading | None, public_key: str | None = None
) -> Verification | None:
    """Verify a session's signed Begin and End readings (see the module docstring); None without either.

    ``public_key`` (hex or base64 DER) is the one to check with; without it a key embedded in the OCMF
    messages is used. One OCMF message holding both the begin and the end reading may come as ``end`` alone
    (or as both)."""
    if begin is None and end is None:
        return None
    whole = begin is not None and end is not None and begin.data == end.data
    invalid: list[str] = []
    unverifiable: list[str] = []
    messages: dict[str, OcmfMessage] = {}
    any_ocmf = False
    for nature, signed in (("Begin", None if whole else begin), ("End", end)):
        if signed is None:
            continue
        text = ocmf_text(signed.data)
        if text is None:
            unverifiable.append(f"the signed {nature} reading is not OCMF")
            continue
        any_ocmf = True
        try:
            messages[nature] = _parse(text)
        except (PyOCMFError, ValueError) as e:  # pyocmf's errors; ValueError: what may slip past them
            invalid.append(f"{nature}: not valid OCMF ({e})")
    if not any_ocmf:
        return Verification(UNVERIFIABLE, "not OCMF", UNKNOWN_ENCODING)
    b_msg, e_msg = messages.get("Begin"), messages.get("End")
    b_reading = _pick(b_msg, True) if b_msg is not None else None
    if whole or begin is None:
        b_reading = _pick(e_msg, True) if e_msg is not None else None  # the whole transaction in one message
        if b_reading is None and e_msg is not None:
            unverifiable.append("no signed Begin reading")
    e_reading = _pick(e_msg, False) if e_msg is not None else None
    if end is None:
        unverifiable.append("no signed End reading")
    if b_msg is not None and e_msg is not None:
        issues = b_msg.check_eichrecht(e_msg, errors_only=True)
    else:
        issues = [i for m in messages.values() for i in m.check_eichrecht(errors_only=True)]
    invalid.extend(f"Eichrecht: {issue.message}" for issue in issues)
    plain_b = begin.plain_wh if begin is not None else None
    invalid.extend(_compare(b_reading, e_reading, plain_b, end.plain_wh if end is not None else None))
    key, embedded = public_key_base64(public_key), False
    if public_key and key is None:
        unverifiable.append("the public key cannot be read (neither hex nor base64)")
    elif key is None:
        keys = {public_key_base64(m.embedded_public_key) for m in messages.values() if m.embedded_public_key}
        keys.discard(None)
        if len(keys) > 1:
            invalid.append("Begin and End carry different public keys")
        elif keys:
            key, embedded = keys.pop(), True
        else:
            unverifiable.append("no public key")
    if key is not None and messages:
        bad, cannot = _signatures(messages, key)
        invalid.extend(bad)
        unverifiable.extend(cannot)
    status = INVALID if invalid else UNVERIFIABLE if unverifiable else VERIFIED
    reasons = invalid or unverifiable
    return Verification(
        status=status,
        reason="; ".join(reasons) if reasons else None,
        encoding=OCMF,
        encoding_version=_version(list(messages.values())),
        public_key=key,
        key_embedded=embedded,
        begin_value=_text(b_reading),
        end_value=_text(e_reading),
    )


def version_number(version: str | None) -> int | None:
    """OCPI's ``encoding_method_version`` (an int) of an OCMF format version: ``"1.0"`` is 1; a version that
    is not a whole number (``"0.4"``) has none."""
    if not version:
        return None
    try:
        number = Decimal(version)
    except InvalidOperation:
        return None
    return int(number) if number.is_finite() and number == number.to_integral_value() else None
