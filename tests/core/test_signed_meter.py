"""Issue #12 "what must hold" item 2 (D3): signed meter data is verified, not just passed on
(``kernel/signed_meter.py``, pure). Every message is real OCMF signed in the test with a key pair made in the
test run (:mod:`tests.world.ocmf`): ECDSA secp256r1 with SHA-256, the OCMF default ``SA``."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from pyocmf.crypto import availability

from kernel.signed_meter import (
    INVALID,
    OCMF,
    UNKNOWN_ENCODING,
    UNVERIFIABLE,
    VERIFIED,
    SignedReading,
    as_base64,
    describe,
    ocmf_text,
    public_key_base64,
    verify,
    version_number,
)
from tests.world.ocmf import SigningMeter

END_AT = "2026-03-02T08:30:00,000+0000"


@pytest.fixture(scope="module")
def meter() -> SigningMeter:
    return SigningMeter()


def _pair(meter: SigningMeter, begin_kwh: str = "1.000", end_kwh: str = "1.500") -> tuple[str, str]:
    return meter.reading("B", begin_kwh, page=1), meter.reading("E", end_kwh, page=2, at=END_AT)


def _readings(begin: str, end: str, plain_begin: str = "1000", plain_end: str = "1500"):
    return SignedReading(begin, Decimal(plain_begin)), SignedReading(end, Decimal(plain_end))


def test_a_genuine_begin_and_end_are_verified_with_the_chargers_key(meter: SigningMeter) -> None:
    """Item 2 (D3): Begin and End signed by the meter, matching the plain register (1000 / 1500 Wh), checked
    with its public key (hex or base64 DER): verified, with the encoding, its version and the key in base64."""
    begin, end = _pair(meter)
    for key in (meter.public_key_hex, meter.public_key_b64):
        v = verify(*_readings(begin, end), public_key=key)
        assert v is not None
        assert (v.status, v.reason) == (VERIFIED, None), v.reason
        assert (v.encoding, v.encoding_version, v.public_key) == (OCMF, "1.0", meter.public_key_b64)
        assert (v.begin_value, v.end_value, v.key_embedded) == ("1.000 kWh", "1.500 kWh", False)


def test_hex_and_base64_encoded_ocmf_is_read(meter: SigningMeter) -> None:
    """Item 2 (D3): a 1.6 SignedData value is "encoded as hex data", a 2.0.1 signedMeterData is "Base64
    encoded": both are the same OCMF and verify."""
    begin, end = _pair(meter)
    hexed = (begin.encode().hex(), end.encode().hex().upper())
    based = (base64.b64encode(begin.encode()).decode(), base64.b64encode(end.encode()).decode())
    for b, e in (hexed, based):
        assert ocmf_text(b) == begin and ocmf_text(e) == end
        v = verify(*_readings(b, e), public_key=meter.public_key_hex)
        assert v is not None and v.status == VERIFIED, v


def test_a_tampered_value_is_invalid(meter: SigningMeter) -> None:
    """Item 2 (D3): the End reading changed after signing (1.500 -> 1.600 kWh, the plain register says the
    same 1.600): the signature no longer matches: invalid, naming the End."""
    begin, end = _pair(meter)
    tampered = end.replace('"RV":1.500', '"RV":1.600')
    assert tampered != end
    v = verify(*_readings(begin, tampered, plain_end="1600"), public_key=meter.public_key_b64)
    assert v is not None and v.status == INVALID
    assert v.reason == "the signature of End does not match (altered data or another meter's key)"


def test_another_meters_key_is_invalid(meter: SigningMeter) -> None:
    """Item 2 (D3): checked with another meter's key (same curve): neither signature matches: invalid."""
    begin, end = _pair(meter)
    v = verify(*_readings(begin, end), public_key=SigningMeter().public_key_b64)
    assert v is not None and v.status == INVALID
    assert v.reason is not None and "the signature of Begin and End does not match" in v.reason


def test_without_any_public_key_it_is_unverifiable_and_an_embedded_key_is_used(meter: SigningMeter) -> None:
    """Item 2 (D3): no key given and none in the message: unverifiable (no public key); the key appended as a
    4th OCMF section is used when no other is given."""
    begin, end = _pair(meter)
    v = verify(*_readings(begin, end))
    assert v is not None and (v.status, v.reason, v.public_key) == (UNVERIFIABLE, "no public key", None)
    embedded_b = meter.sign(
        meter.payload("B", "1.000", page=1, at="2026-03-02T08:00:00,000+0000"), embed_key=True
    )
    embedded_e = meter.sign(meter.payload("E", "1.500", page=2, at=END_AT), embed_key=True)
    v = verify(*_readings(embedded_b, embedded_e))
    assert v is not None and (v.status, v.public_key, v.key_embedded) == (
        VERIFIED,
        meter.public_key_b64,
        True,
    )


def test_data_that_is_not_ocmf_is_unverifiable() -> None:
    """Item 2 (D3): signed data in another format (or none we can read) cannot be checked: unverifiable, not
    invalid."""
    v = verify(*_readings("DEADBEEF", "0A0B0C0D"), public_key=None)
    assert v is not None and (v.status, v.reason, v.encoding) == (UNVERIFIABLE, "not OCMF", UNKNOWN_ENCODING)
    assert verify(None, None) is None


def test_a_signed_reading_that_disagrees_with_the_plain_register_is_invalid(meter: SigningMeter) -> None:
    """Item 2 (D3): the meter signed 1.500 kWh at the End but the plain meter stop is 1520 Wh (20 Wh more
    than the 10 Wh reset tolerance): invalid; 1508 Wh (rounding) is verified."""
    begin, end = _pair(meter)
    v = verify(*_readings(begin, end, plain_end="1520"), public_key=meter.public_key_b64)
    assert v is not None and v.status == INVALID
    assert v.reason == "the signed End reading (1.500 kWh) differs from the plain register (1.520 kWh)"
    v = verify(*_readings(begin, end, plain_end="1508"), public_key=meter.public_key_b64)
    assert v is not None and v.status == VERIFIED


def test_eichrecht_errors_between_begin_and_end_are_invalid(meter: SigningMeter) -> None:
    """Item 2 (D3): a correctly signed pair that the Transparenzsoftware rejects: the register goes back
    (End 0.900 < Begin 1.000 kWh), or the End was signed by a meter with another serial number."""
    begin = meter.reading("B", "1.000", page=1)
    back = meter.reading("E", "0.900", page=2, at=END_AT)
    v = verify(*_readings(begin, back, plain_end="900"), public_key=meter.public_key_b64)
    assert v is not None and v.status == INVALID
    assert v.reason is not None and "Eichrecht: End value (0.900) must be >= begin value (1.000)" in v.reason
    other = meter.reading("E", "1.500", page=2, at=END_AT, MS="MS-9999", GS="GW-9999")
    v = verify(*_readings(begin, other), public_key=meter.public_key_b64)
    assert v is not None and v.status == INVALID and "Serial numbers must match" in (v.reason or "")


def test_ocmf_that_does_not_parse_is_invalid(meter: SigningMeter) -> None:
    """Item 2 (D3): a message that says it is OCMF but whose payload is not JSON: invalid (parse error)."""
    begin, _end = _pair(meter)
    v = verify(*_readings(begin, 'OCMF|{"FV":"1.0","RD":[{|{"SD":"00"}'), public_key=meter.public_key_b64)
    assert v is not None and v.status == INVALID and (v.reason or "").startswith("End: not valid OCMF")


def test_one_message_holding_the_whole_transaction_verifies_as_the_end(meter: SigningMeter) -> None:
    """Item 2 (D3): some meters sign Begin and End in one message at the end: given as the End alone, its
    begin reading is compared with the plain meter start."""
    text = meter.payload("B", "1.000", page=3, at="2026-03-02T08:00:00,000+0000")
    first = text[text.index('"RD":[') + 6 : -2]
    end = (
        first.replace('"TX":"B"', '"TX":"E"')
        .replace('"RV":1.000', '"RV":1.500')
        .replace("08:00:00", "08:30:00")
    )
    whole = meter.sign(f"{text[:-2]},{end}]}}")
    v = verify(None, SignedReading(whole, Decimal(1500)), public_key=meter.public_key_b64)
    assert v is not None and (v.status, v.begin_value, v.end_value) == (VERIFIED, "1.000 kWh", "1.500 kWh"), v
    v = verify(SignedReading(whole, Decimal(990)), SignedReading(whole, Decimal(1500)), meter.public_key_b64)
    assert v is not None and v.status == VERIFIED, v
    v = verify(SignedReading(whole, Decimal(900)), SignedReading(whole, Decimal(1500)), meter.public_key_b64)
    assert v is not None and v.status == INVALID and "signed Begin reading (1.000 kWh)" in (v.reason or "")


def test_a_missing_signed_begin_is_unverifiable(meter: SigningMeter) -> None:
    """Item 2 (D3): only the End is signed: the energy cannot be checked from signed data: unverifiable."""
    _begin, end = _pair(meter)
    v = verify(None, SignedReading(end, Decimal(1500)), public_key=meter.public_key_b64)
    assert v is not None and (v.status, v.reason) == (UNVERIFIABLE, "no signed Begin reading")


def test_without_the_cryptography_library_it_is_unverifiable(
    meter: SigningMeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 2 (D3): pyocmf without its ``[crypto]`` extra cannot check signatures: unverifiable, saying why
    (the parse, the Eichrecht and the plain-register checks still run)."""
    begin, end = _pair(meter)
    monkeypatch.setattr(availability, "CRYPTOGRAPHY_AVAILABLE", False)
    v = verify(*_readings(begin, end), public_key=meter.public_key_b64)
    assert v is not None and v.status == UNVERIFIABLE
    assert v.reason == "signature check unavailable (the cryptography library is not installed)"
    v = verify(*_readings(begin, end, plain_end="1600"), public_key=meter.public_key_b64)
    assert v is not None and v.status == INVALID


def test_the_ocpi_encodings_and_the_text_people_read(meter: SigningMeter) -> None:
    """Item 2 (D3): OCPI wants signed data and the public key "base64 encoded" and an int version; people
    read verified / unverifiable (reason) / INVALID (reason)."""
    begin, _end = _pair(meter)
    assert base64.b64decode(as_base64(begin)).decode() == begin
    assert as_base64(begin.encode().hex()) == as_base64(begin)
    assert base64.b64decode(as_base64("DEADBEEF")) == bytes.fromhex("DEADBEEF")
    assert (
        public_key_base64(meter.public_key_hex)
        == public_key_base64(meter.public_key_b64)
        == meter.public_key_b64
    )
    assert public_key_base64("not a key!") is None
    assert (version_number("1.0"), version_number("0.4"), version_number(None)) == (1, None, None)
    assert describe(VERIFIED, None) == "verified"
    assert describe(UNVERIFIABLE, "no public key") == "unverifiable (no public key)"
    assert describe(INVALID, "the signature does not match") == "INVALID (the signature does not match)"
    assert describe(None, None) is None
