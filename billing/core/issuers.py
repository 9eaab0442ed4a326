"""Issuers: the hosted parties that sell charging and issue documents (a CPO, the hub's own eMSP).

An :class:`Issuer` is what a document needs of its seller beyond the legal identity: the currency it invoices
in, its invoice and credit note series (two series, so a number is never both), its payment terms, its VAT
situation (whether it allows reverse charge on its B2B supplies, or an exemption it invoices under) and a logo
reference for the rendered document. The database adapter stores it (set from the CLI and the API); here it is
a value, validated.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.core.documents import DocumentError, Identity, PaymentTerms
from billing.core.en16931 import invoice_currency
from billing.core.numbering import Series
from billing.core.vat import VatTreatment, treatment_for


@dataclass(frozen=True, slots=True)
class Issuer:
    """One issuer: ``key`` (the hub's name for it), identity, currency, series, terms, VAT situation."""

    key: str
    identity: Identity
    currency: str
    invoice_series: Series
    credit_series: Series
    terms: PaymentTerms
    reverse_charge_allowed: bool = False
    exemption: str | None = None
    logo: str | None = None

    def __post_init__(self) -> None:
        if not self.key.strip():
            raise DocumentError("an issuer has a key")
        object.__setattr__(self, "currency", invoice_currency(self.currency))
        if self.invoice_series.prefix == self.credit_series.prefix:
            raise DocumentError(f"issuer {self.key}: invoices and credit notes need two series")
        if not self.exemption and not (self.identity.vat_id or self.identity.registration_id):
            raise DocumentError(
                f"issuer {self.key}: a VAT id (or an exemption) is needed to invoice VAT (BR-S-02)"
            )

    def treatment(self, buyer: Identity) -> VatTreatment:
        """The VAT treatment of this issuer's supply to ``buyer`` (:func:`billing.core.vat.treatment_for`)."""
        return treatment_for(
            self.identity, buyer, reverse_charge_allowed=self.reverse_charge_allowed, exemption=self.exemption
        )
