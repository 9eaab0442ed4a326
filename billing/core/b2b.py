"""B2B documents from a closed settlement run: which documents its lines give, between whom, and their lines.

Pure: the run's lines come in as text (the canonical ``lines.csv`` of settlement's export) or values, the VAT
rates and supply periods as mappings the adapter looked up; no database, files or clock.

A paying line of the split gives one side of one document (``cpo_retained`` moves no money and gives none):

=================  ===========================  =======================  =================================
settlement line    seller (supplier)            buyer                    issued by
=================  ===========================  =======================  =================================
``emsp_owes_cpo``  the CPO (counterparty)       the eMSP (party)         the CPO: an invoice (380)
``hub_fee``        the hub (party)              the CPO (counterparty)   the hub: an invoice (380)
``site_host_share`` the site host (party)       the CPO (counterparty)   the CPO, self-billing (389)
=================  ===========================  =======================  =================================

One document per (kind, seller, buyer, currency) of the run. Its lines are the settlement lines as billed
(the seller's side: the roaming line's amount negated), so the document's net is the statement's to the
cent; its VAT is BR-CO-17's per category and rate over those lines, and :attr:`DocumentPlan.billed_vat` (the
sum of the per-CDR VAT of the settlement) is kept next to it for the reconciliation (it may differ by the
per-CDR rounding).

A period whose lines add up to less than zero (the credits of corrected CDRs exceed its CDRs) owes the
balance the other way: :func:`is_credit` tells it, and :func:`settlement_credit_note` makes it the credit
note of the same issuer (BT-3 ``381``; for self-billing the self-biller's self-billed credit note, ``261``),
its lines the settlement lines negated (positive: what is credited), its net minus the statement's to the
cent, naming the earlier B2B invoices it corrects (BG-3, BT-25: each one on which a credited CDR was billed;
VAT Directive Art. 219).

**Never category O next to another category** (EN 16931 BR-O-11, BR-O-12: a document with a line "not subject
to VAT" has that as its only VAT breakdown, and no line of another category). A run's lines can give both
between the same two parties: a site host share under an agreement without its own ``vat_rate`` carries, CDR by
CDR, the VAT of that CDR's energy as settlement's split applied it (``site_host_share``'s VAT is its share of the
energy VAT: none for a CDR whose tariff had "no VAT applicable", category O, and a rate for the others); a
roaming CDR can have a dimension without VAT (a parking fee) next to its taxed energy. Such a plan's lines are
**split into two documents** (:func:`vat_parts`: the taxed lines', then the O lines'), each an invoice or a credit
note on its own, with the same source key plus ``:O`` for the second (:data:`OUTSIDE_VAT_KEY`). Why two documents
and not one category for the whole: the VAT of each line is what the parties settled (the statement's VAT and
gross, which moved the money); issuing the O lines as ``S`` would charge VAT that was not settled (and invent a
rate settlement did not apply), issuing the taxed lines as ``O`` would drop VAT that was; and a supply outside the
scope of VAT carries no VAT ids (BR-O-02), so it cannot be described on a document that also carries the taxed
supplies' VAT ids (BR-S-02). This is the rule of the per-session and monthly invoices too (their O lines on an
invoice of their own, :mod:`billing.core.invoices`). The O document names the seller by its legal registration
id (BT-30, BR-CO-26: :func:`billing.core.vat.outside_scope_parties`; without one it is not issued, with the
reason). The net of the two together is the statement's to the cent (:func:`check_net` over both parts'
lines); each CDR is linked to the first document holding its lines.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from billing.core.documents import (
    CreditNote,
    CreditScope,
    DocumentError,
    Identity,
    Invoice,
    InvoiceLine,
    InvoiceReference,
    PaymentTerms,
    SupplyPeriod,
    Unit,
    VatCategory,
)
from billing.core.en16931 import total
from billing.core.invoices import assemble_invoice
from billing.core.vat import (
    OUTSIDE_EU,
    TreatmentKind,
    VatTreatment,
    breakdown,
    classify,
    notes,
    outside_eu_scope,
    outside_scope_parties,
    totals,
    treatment_for,
)


class B2BKind(StrEnum):
    """What a B2B document is for."""

    ROAMING = "roaming"
    HUB_FEE = "hub_fee"
    SITE_HOST = "site_host"


KIND_OF_LINE = {
    "emsp_owes_cpo": B2BKind.ROAMING,
    "hub_fee": B2BKind.HUB_FEE,
    "site_host_share": B2BKind.SITE_HOST,
}
SELF_BILLING_NOTE = "Self-billing"
"""BT-22 on a self-billed invoice: the mention VAT Directive Art. 226(18) requires."""
DESCRIPTIONS = {B2BKind.HUB_FEE: "Hub fee", B2BKind.SITE_HOST: "Site host share"}


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One line of a settlement run (a row of its ``lines.csv``), amounts signed from ``party``'s view."""

    settlement_period: str
    cdr_id: str
    line_no: int
    kind: str
    party: str
    counterparty: str
    currency: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    agreement_id: str
    agreement_version: int | None
    is_adjustment: bool = False


def parse_lines_csv(text: str) -> tuple[SettlementLine, ...]:
    """The lines of settlement's canonical ``lines.csv`` (exact decimals, ``true``/``false``)."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            version = row.get("agreement_version") or ""
            out.append(
                SettlementLine(
                    settlement_period=row["settlement_period"],
                    cdr_id=row["cdr_id"],
                    line_no=int(row["line_no"]),
                    kind=row["kind"],
                    party=row["party"],
                    counterparty=row["counterparty"],
                    currency=row["currency"],
                    net=Decimal(row["net"]),
                    vat=Decimal(row["vat"]),
                    gross=Decimal(row["gross"]),
                    agreement_id=row.get("agreement_id") or "",
                    agreement_version=int(float(version)) if version else None,
                    is_adjustment=row.get("is_adjustment") == "true",
                )
            )
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise DocumentError(f"settlement lines: a row that is not a settlement line ({exc})") from None
    return tuple(out)


def ledger_totals(lines: Sequence[SettlementLine]) -> dict[tuple[str, str], tuple[Decimal, Decimal, Decimal]]:
    """Per (party, currency), net, VAT and gross of both sides of every paying line: what each party's
    settlement statement says (settlement's ledger), to check the lines against the stored statements."""
    sums: dict[tuple[str, str], list[Decimal]] = {}
    for ln in lines:
        if ln.kind not in KIND_OF_LINE:
            continue
        for who, sign in ((ln.party, 1), (ln.counterparty, -1)):
            acc = sums.setdefault((who, ln.currency), [Decimal(0), Decimal(0), Decimal(0)])
            acc[0] += sign * ln.net
            acc[1] += sign * ln.vat
            acc[2] += sign * ln.gross
    return {k: (v[0], v[1], v[2]) for k, v in sums.items()}


@dataclass(frozen=True, slots=True)
class DocumentPlan:
    """One document a run gives: its kind, seller and buyer (settlement labels ``CC*PID``), currency, lines."""

    kind: B2BKind
    seller: str
    buyer: str
    currency: str
    lines: tuple[SettlementLine, ...]

    @property
    def self_billed(self) -> bool:
        return self.kind is B2BKind.SITE_HOST

    @property
    def issuer_party(self) -> str:
        """Who issues it: the seller, or for self-billing the buyer (the CPO that pays the site host)."""
        return self.buyer if self.self_billed else self.seller

    @property
    def statement_party(self) -> str:
        """Whose statement the document bills (the seller's) and, in the source key, the counterparty."""
        return self.seller

    @property
    def counterparty(self) -> str:
        return self.buyer

    def billed(self, line: SettlementLine) -> tuple[Decimal, Decimal]:
        """(net, VAT) of ``line`` as the seller bills it."""
        sign = -1 if self.kind is B2BKind.ROAMING else 1
        return sign * line.net, sign * line.vat

    @property
    def billed_net(self) -> Decimal:
        return total((self.billed(ln)[0] for ln in self.lines), self.currency)

    @property
    def billed_vat(self) -> Decimal:
        return total((self.billed(ln)[1] for ln in self.lines), self.currency)


def b2b_treatment(
    kind: B2BKind,
    seller: Identity,
    buyer: Identity,
    *,
    seller_allows_reverse_charge: bool = False,
    exemption: str | None = None,
) -> VatTreatment:
    """The VAT treatment of a B2B document of ``kind``: :func:`billing.core.vat.treatment_for`, the one rule of
    every document (an exempt seller's exemption first; reverse charge only between two VAT-registered
    businesses in different EU member states), with reverse charge allowed as the supply is:

    * ``HUB_FEE``: the hub's service to a CPO is a B2B service under the general rule (VAT Directive Art. 44,
      taxed where the customer is established; Art. 196, the customer liable): always allowed, so a hub in NL
      billing a CPO in DE reverse charges it (category ``AE``, the Art. 226(11a) wording, no VAT), whatever
      the issuer's flag for its charging supplies; billing a CPO established outside the EU (GB, CH ...) it is
      not subject to EU VAT at all (:data:`billing.core.vat.OUTSIDE_EU`: category ``O`` with the Art. 44
      reason, no VAT ids on the document, the seller named by its registration id), before any exemption of
      the seller (an exemption is of a supply that is in scope);
    * ``ROAMING``: charging (electricity) sold on to an eMSP: where it is taxed is the seller's decision, as for
      every charging document: ``seller_allows_reverse_charge`` (the CPO issuer's ``reverse_charge_allowed``);
    * ``SITE_HOST``: the host's share for the charging site (a service connected with immovable property, Art.
      47, taxed where the site is): the host's own ``reverse_charge_allowed`` when it has an issuer row, else
      not allowed."""
    if kind is B2BKind.HUB_FEE and outside_eu_scope(seller, buyer):
        return OUTSIDE_EU
    allowed = True if kind is B2BKind.HUB_FEE else seller_allows_reverse_charge
    return treatment_for(seller, buyer, reverse_charge_allowed=allowed, exemption=exemption)


def plan_documents(lines: Sequence[SettlementLine]) -> tuple[DocumentPlan, ...]:
    """The documents of a run's lines, one per (kind, seller, buyer, currency), in a stable order."""
    groups: dict[tuple[B2BKind, str, str, str], list[SettlementLine]] = {}
    for ln in lines:
        kind = KIND_OF_LINE.get(ln.kind)
        if kind is None:
            continue
        seller, buyer = (
            (ln.counterparty, ln.party) if kind is B2BKind.ROAMING else (ln.party, ln.counterparty)
        )
        groups.setdefault((kind, seller, buyer, ln.currency), []).append(ln)
    order = {k: i for i, k in enumerate(B2BKind)}
    keys = sorted(groups, key=lambda k: (order[k[0]], k[1], k[2], k[3]))
    return tuple(
        DocumentPlan(k[0], k[1], k[2], k[3], tuple(sorted(groups[k], key=lambda x: (x.cdr_id, x.line_no))))
        for k in keys
    )


def source_key(period: str, sequence: int, statement_id: int, counterparty: str) -> str:
    """What a B2B document is issued for, once (UNIQUE per issuer and kind)."""
    return f"settlement:{period}:{sequence}:{statement_id}:{counterparty}"


def share_lines(
    plan: DocumentPlan,
    rates: Mapping[str, Decimal | None],
    supplies: Mapping[str, SupplyPeriod],
    treatment: VatTreatment,
) -> tuple[InvoiceLine, ...]:
    """A hub fee or site host share document's lines: one per settlement line (one unit of the line's net;
    a negative one, an adjustment's credit, has quantity -1), under the VAT rate (percent, None: not subject
    to VAT) of ``rates[cdr_id]`` and the CDR's supply period."""
    if plan.kind is B2BKind.ROAMING:
        raise DocumentError("roaming lines are the CDRs' own lines (billing.core.lines.cdr_lines)")
    out = []
    for ln in plan.lines:
        if ln.cdr_id not in rates:
            raise DocumentError(f"{DESCRIPTIONS[plan.kind]} of CDR {ln.cdr_id}: no VAT rate")
        net, _vat = plan.billed(ln)
        category, rate = classify(rates[ln.cdr_id], treatment)
        out.append(
            InvoiceLine(
                line_id=f"{ln.cdr_id}:{ln.line_no}",
                description=f"{DESCRIPTIONS[plan.kind]}, CDR {ln.cdr_id}"
                + (" (adjustment)" if ln.is_adjustment else ""),
                quantity=Decimal(-1) if net < 0 else Decimal(1),
                unit=Unit.ONE,
                unit_price=abs(net),
                net=net,
                currency=plan.currency,
                vat_category=category,
                vat_rate=rate,
                cdr_id=ln.cdr_id,
                supply=supplies.get(ln.cdr_id),
            )
        )
    return tuple(out)


OUTSIDE_VAT_KEY = ":O"
"""The source key suffix of the second document of a plan split by :func:`vat_parts` (its category O lines)."""


def vat_parts(lines: Sequence[InvoiceLine]) -> tuple[tuple[InvoiceLine, ...], ...]:
    """``lines`` as the documents they go on: one, unless category O lines sit next to lines of another category
    (EN 16931 BR-O-11/12 forbid that on one document): then (the other lines, the O lines), each in order."""
    outside = VatCategory.OUTSIDE_SCOPE
    o_lines = tuple(ln for ln in lines if ln.vat_category is outside)
    others = tuple(ln for ln in lines if ln.vat_category is not outside)
    return (others, o_lines) if o_lines and others else (tuple(lines),)


def _one_document(lines: Sequence[InvoiceLine]) -> None:
    if len(vat_parts(lines)) > 1:
        raise DocumentError(
            "lines not subject to VAT (category O) cannot share a document with lines of another category "
            "(EN 16931 BR-O-11, BR-O-12): issue them apart (billing.core.b2b.vat_parts)"
        )


def check_net(plan: DocumentPlan, lines: Sequence[InvoiceLine]) -> None:
    """DocumentError unless ``lines`` add up to the plan's net to the cent, CDR by CDR."""
    per_cdr: dict[str, Decimal] = {}
    for ln in plan.lines:
        per_cdr[ln.cdr_id] = per_cdr.get(ln.cdr_id, Decimal(0)) + plan.billed(ln)[0]
    got: dict[str, Decimal] = {}
    for il in lines:
        got[il.cdr_id or ""] = got.get(il.cdr_id or "", Decimal(0)) + il.net
    for cdr_id, net in per_cdr.items():
        if got.get(cdr_id, Decimal(0)) != net:
            raise DocumentError(
                f"CDR {cdr_id}: the document's lines ({got.get(cdr_id, Decimal(0))}) are not the settlement's "
                f"{net}"
            )
    if set(got) - set(per_cdr):
        raise DocumentError("a document line for a CDR the settlement lines do not have")


def settlement_invoice(
    plan: DocumentPlan,
    lines: Sequence[InvoiceLine],
    *,
    series: str,
    number: str,
    issue_date: date,
    seller: Identity,
    buyer: Identity,
    terms: PaymentTerms,
    treatment: VatTreatment,
    period: SupplyPeriod,
    reference: str,
    whole: Sequence[InvoiceLine] | None = None,
) -> Invoice:
    """The invoice (or self-billed invoice) of ``plan`` with ``lines`` (checked against the plan to the cent),
    covering the settlement ``period`` and every line's supply; ``reference`` (the run) is a note (BT-22). A
    total below zero is refused: that is :func:`settlement_credit_note`'s. ``lines`` are one of
    :func:`vat_parts` (never O next to another category); when they are a part of the plan's lines, ``whole``
    is all of them, and the net is checked over ``whole``."""
    if not lines:
        raise DocumentError("nothing to invoice: no lines (BR-16)")
    _one_document(lines)
    check_net(plan, lines if whole is None else whole)
    seller, buyer = _named(seller, buyer, treatment, lines)
    return assemble_invoice(
        lines,
        series=series,
        number=number,
        issue_date=issue_date,
        seller=seller,
        buyer=buyer,
        terms=terms,
        treatment=treatment,
        supply_period=SupplyPeriod.span([period, *(ln.supply for ln in lines if ln.supply)]),
        notes_before=(SELF_BILLING_NOTE,) if plan.self_billed else (),
        notes_after=(reference,),
        self_billed=plan.self_billed,
    )


def _named(
    seller: Identity, buyer: Identity, treatment: VatTreatment, lines: Sequence[InvoiceLine]
) -> tuple[Identity, Identity]:
    """The parties as the document names them: outside the scope of VAT (the treatment's, or every line O)
    without VAT ids (BR-O-02)."""
    if treatment.kind is TreatmentKind.OUTSIDE_SCOPE or all(
        ln.vat_category is VatCategory.OUTSIDE_SCOPE for ln in lines
    ):
        return outside_scope_parties(seller, buyer)
    return seller, buyer


def is_credit(lines: Sequence[InvoiceLine], treatment: VatTreatment) -> bool:
    """Whether ``lines`` (as billed) add up, VAT included, to less than zero: a credit note, not an invoice."""
    if not lines:
        return False
    currency = lines[0].currency
    return totals(lines, breakdown(lines, currency, treatment), currency).tax_inclusive < 0


def settlement_credit_note(
    plan: DocumentPlan,
    lines: Sequence[InvoiceLine],
    *,
    series: str,
    number: str,
    issue_date: date,
    seller: Identity,
    buyer: Identity,
    treatment: VatTreatment,
    credits: tuple[str, date],
    reference: str,
    also_credits: Sequence[tuple[str, date]] = (),
    whole: Sequence[InvoiceLine] | None = None,
) -> CreditNote:
    """The credit note of a period of ``plan`` whose ``lines`` (as billed, checked against the plan to the
    cent) add up to less than zero: the same lines negated (each naming the settlement line it credits), VAT
    per category and rate (BR-CO-17), ``credits`` the (number, issue date) of the earlier B2B invoice it
    corrects (BT-25, BT-26) and ``also_credits`` the other earlier invoices on which credited CDRs were
    billed (BG-3 is 0..n: every preceding invoice is named); self-billed (type 261) when the plan is. ``lines``
    and ``whole`` as :func:`settlement_invoice`'s (one of :func:`vat_parts`, the net checked over ``whole``)."""
    if not lines:
        raise DocumentError("nothing to credit: no lines (BR-16)")
    _one_document(lines)
    check_net(plan, lines if whole is None else whole)
    seller, buyer = _named(seller, buyer, treatment, lines)
    credited = tuple(
        InvoiceLine(
            line_id=ln.line_id,
            description=ln.description,
            quantity=-ln.quantity,
            unit=ln.unit,
            unit_price=ln.unit_price,
            net=-ln.net,
            currency=ln.currency,
            vat_category=ln.vat_category,
            vat_rate=ln.vat_rate,
            cdr_id=ln.cdr_id,
            session_ref=ln.session_ref,
            signed_data_ref=ln.signed_data_ref,
            supply=ln.supply,
            group=ln.group,
            credits_line=ln.line_id,
        )
        for ln in lines
    )
    currency = plan.currency
    vat = breakdown(credited, currency, treatment)
    figures = totals(credited, vat, currency)
    what = "self-billed charges" if plan.self_billed else "charges"
    return CreditNote(
        series=series,
        number=number,
        issue_date=issue_date,
        seller=seller,
        buyer=buyer,
        currency=currency,
        invoice_number=credits[0],
        invoice_date=credits[1],
        reason=f"{reference}: the period's credits exceed its {what}",
        scope=CreditScope.PARTIAL,
        lines=credited,
        breakdown=vat,
        totals=figures,
        notes=((SELF_BILLING_NOTE,) if plan.self_billed else ()) + notes(vat),
        self_billed=plan.self_billed,
        also_credits=tuple(InvoiceReference(number, day) for number, day in also_credits),
    )


__all__ = [
    "DESCRIPTIONS",
    "KIND_OF_LINE",
    "OUTSIDE_VAT_KEY",
    "SELF_BILLING_NOTE",
    "B2BKind",
    "DocumentPlan",
    "SettlementLine",
    "b2b_treatment",
    "check_net",
    "is_credit",
    "ledger_totals",
    "parse_lines_csv",
    "plan_documents",
    "settlement_credit_note",
    "settlement_invoice",
    "share_lines",
    "source_key",
    "vat_parts",
]
