"""billing — invoices, credit notes, payment collection and dunning (issue 14): the hub gets its customers' money.

This session holds only the functional core, :mod:`billing.core`: typed, immutable documents (EN 16931 VAT
invoices and credit notes) made from priced CDRs, VAT per rate and category, gap-free numbering, dunning and
receivables, all pure (no database, clock, network or files; "today" and every instant are parameters). The
adapters (tables and the gap-free allocator, Stripe, the Factur-X PDF, the dunning job, the portal pages) come
next, around it, as in ``tariffs`` and ``settlement``; see docs/billing.md.

Public surface: the names below, for the assembly (``evhub``); no other stage imports billing.
"""

from billing.core.credit_notes import CreditError, credit_for_cdr, full_credit, partial_credit
from billing.core.documents import (
    Address,
    CreditNote,
    DocumentError,
    Identity,
    Invoice,
    InvoiceLine,
    PaymentTerms,
    SupplyPeriod,
    Totals,
    Unit,
    VatBreakdown,
    VatCategory,
)
from billing.core.dunning import DunningAction, DunningRule, DunningSchedule, DunningStep, InvoiceStanding
from billing.core.invoices import monthly_invoice, session_invoice
from billing.core.issuers import Issuer
from billing.core.lines import CdrComponent, Dimension, PricedCdr, cdr_lines, fee_line
from billing.core.numbering import NumberingError, Series
from billing.core.vat import VatTreatment, treatment_for

__all__ = [
    "Address",
    "CdrComponent",
    "CreditError",
    "CreditNote",
    "Dimension",
    "DocumentError",
    "DunningAction",
    "DunningRule",
    "DunningSchedule",
    "DunningStep",
    "Identity",
    "Invoice",
    "InvoiceLine",
    "InvoiceStanding",
    "Issuer",
    "NumberingError",
    "PaymentTerms",
    "PricedCdr",
    "Series",
    "SupplyPeriod",
    "Totals",
    "Unit",
    "VatBreakdown",
    "VatCategory",
    "VatTreatment",
    "cdr_lines",
    "credit_for_cdr",
    "fee_line",
    "full_credit",
    "monthly_invoice",
    "partial_credit",
    "session_invoice",
    "treatment_for",
]
