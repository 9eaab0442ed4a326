"""billing.store.bulk_read decodes the monthly job's COPY (PostgreSQL's CSV, one row per explanation line, a
CDR's fields on its first row only) into the bulk path's columns: rows in any order, CDRs of no account or
ending after their account's month dropped, and what cannot be invoiced refused with the CDR named."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.documents import DocumentError
from billing.store.bulk_read import _columns, _decimals, parse

N = "\\N"
OCT_END_US = 1_761_955_200_000_000  # 2025-11-01T00:00:00Z
START = 1_759_312_800_000_000  # 2025-10-01T10:00:00Z
OWNERS = {(7, "EUR"): (70, OCT_END_US), (8, "EUR"): (80, OCT_END_US)}


def cdr_rows(
    db_id: int, uid: str, fleet: int, lines: list[tuple[str, str, str, str, str, str]], **cdr: str
) -> list[str]:
    fields = {
        "is_credit": "f",
        "currency": "EUR",
        "start_us": str(START + db_id * 1_500_000),
        "end_us": str(START + db_id * 1_500_000 + 3_600_000_000),
        "total_excl": "3.00",
        "session_ref": f"S-{db_id}",
        "signed": "f",
        "original_uid": N,
        "location": '"Gent ""Zuid"""',
        "fleet_id": str(fleet),
        "driver": "Ada",
        "visual": N,
        "contract": "NL-EVH-C1",
        "vehicle": N,
    } | cdr
    head = [uid, *fields.values()]
    rest = [N] * len(head)  # the CASE of copy_query: NULL but on the first row
    if not lines:
        return [",".join([str(db_id), *head, N, N, N, N, N, N, N])]
    return [
        ",".join([str(db_id), *(head if n == 0 else rest), str(n + 1), *line]) for n, line in enumerate(lines)
    ]


ENERGY = ("component", "ENERGY", "10", "0.30", "21", "3.00")


def decode(rows: list[str]):
    return _columns(parse(io.BytesIO(("\n".join(rows) + "\n").encode())), OWNERS)


def test_rows_in_any_order_give_each_cdr_once_and_drop_what_is_not_the_batchs() -> None:
    rows = [
        *cdr_rows(3, "NL*EVH*C3", 8, [ENERGY, ("component", "TIME", "1.5", "0", "21", "0")]),
        *cdr_rows(1, "NL*EVH*C1", 7, [ENERGY]),
        *cdr_rows(2, "NL*EVH*C2", 9, [ENERGY]),  # fleet 9 has no account here
        *cdr_rows(4, "NL*EVH*C4", 7, [ENERGY], end_us=str(OCT_END_US)),  # ends at the month's end
    ]
    columns, outside = decode(rows[::-1])
    t = columns.table
    assert columns.db_id.tolist() == [1, 3]
    assert [t.cdr_id.at(i) for i in range(2)] == ["NL*EVH*C1", "NL*EVH*C3"]
    assert t.invoice.tolist() == [70, 80]
    assert t.location.at(0) == 'Gent "Zuid"'
    assert t.group.at(1) == ("Ada", "No vehicle")
    assert t.comp_cdr.tolist() == [0, 1, 1]
    assert [t.comp_quantity.at(i) for i in range(3)] == ["10", "10", "1.5"]
    assert [t.comp_vat.at(i) for i in range(3)] == [Decimal(21)] * 3
    assert t.total_excl.tolist() == [300, 300]
    assert t.start.at(0) == "2025-10-01T10:00:01.500000+00:00"
    assert t.end.at(0) == "2025-10-01T11:00:01.500000+00:00"
    assert outside == set()


def test_a_line_without_a_rate_marks_its_account_outside_the_scope_of_vat() -> None:
    columns, outside = decode(cdr_rows(1, "C1", 7, [("component", "ENERGY", "10", "0.30", N, "3.00")]))
    assert outside == {70} and columns.table.comp_vat.at(0) is None


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (cdr_rows(1, "C1", 7, [ENERGY], is_credit="t"), "credit CDR C1 needs the CDR it credits"),
        (cdr_rows(1, "C1", 7, []), "CDR C1 has no priced lines"),
        (cdr_rows(1, "C1", 7, [("component", "FUEL", "1", "1", "21", "3.00")]), "dimension 'FUEL'"),
        (cdr_rows(1, "C1", 7, [("component", "ENERGY", "1", "1", "21", "0.001")]), "not a EUR amount"),
    ],
)
def test_what_cannot_be_invoiced_is_refused_naming_it(rows: list[str], message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        decode([*cdr_rows(5, "OK", 7, [ENERGY]), *rows])


@given(
    st.lists(
        st.decimals(allow_nan=False, allow_infinity=False).map(str)
        | st.decimals(allow_nan=False, allow_infinity=False, places=8).map(lambda d: f"{d:f}")
        | st.sampled_from(["0.0000001", "0.000000", "-0", "007", "1e3", "+1", "1.", "0.10"]),
        min_size=1,
        max_size=20,
    )
)
def test_amount_and_quantity_texts_are_written_as_str_of_decimal(values: list[str]) -> None:
    assert _decimals(values) == [str(Decimal(v)) for v in values]
    assert _decimals(values, zero="0") == [str(Decimal(v)) if Decimal(v) else "0" for v in values]
