"""billing — invoices, credit notes, payment collection and dunning (issue 14): the hub gets its customers' money.

The functional core, :mod:`billing.core`: typed, immutable documents (EN 16931 VAT invoices and credit notes)
made from priced CDRs, VAT per rate and category, gap-free numbering, dunning and receivables, all pure (no
database, clock, network or files; "today" and every instant are parameters). Around it the database adapter,
:mod:`billing.store`: issuers, the gap-free allocator, issued invoices and credit notes. The other adapters
(Stripe, the Factur-X PDF, the dunning job, the portal pages) come next, as in ``tariffs`` and ``settlement``;
see docs/billing.md.

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
from billing.store.b2b import SettlementDocumentsError
from billing.store.b2b import closed_runs as closed_settlement_runs
from billing.store.b2b import issue_run_documents as issue_settlement_documents
from billing.store.cdrs import priced_cdr
from billing.store.codec import load_credit_note, load_invoice
from billing.store.issuers import IssuerError, add_issuer, get_issuer, list_issuers
from billing.store.issuers import from_row as issuer_of_row
from billing.store.issuing import (
    CREDIT_NOTE,
    INVOICE,
    BillingError,
    document_of,
    issue_cdr_credit_note,
    issue_session_invoice,
)
from billing.store.numbers import Allocated, allocate

__all__ = [
    "CREDIT_NOTE",
    "INVOICE",
    "Address",
    "Allocated",
    "BillingError",
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
    "IssuerError",
    "NumberingError",
    "PaymentTerms",
    "PricedCdr",
    "Series",
    "SettlementDocumentsError",
    "SupplyPeriod",
    "Totals",
    "Unit",
    "VatBreakdown",
    "VatCategory",
    "VatTreatment",
    "add_issuer",
    "allocate",
    "cdr_lines",
    "closed_settlement_runs",
    "credit_for_cdr",
    "document_of",
    "fee_line",
    "full_credit",
    "get_issuer",
    "issue_cdr_credit_note",
    "issue_session_invoice",
    "issue_settlement_documents",
    "issuer_of_row",
    "list_issuers",
    "load_credit_note",
    "load_invoice",
    "monthly_invoice",
    "partial_credit",
    "priced_cdr",
    "session_invoice",
    "treatment_for",
]
