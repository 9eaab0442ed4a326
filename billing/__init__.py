"""billing — invoices, credit notes, payment collection and dunning (issue 14): the hub gets its customers' money.

The functional core, :mod:`billing.core`: typed, immutable documents (EN 16931 VAT invoices and credit notes)
made from priced CDRs, VAT per rate and category, gap-free numbering, dunning and receivables, all pure (no
database, clock, network or files; "today" and every instant are parameters). Around it the database adapter,
:mod:`billing.store`: issuers, the gap-free allocator, issued invoices and credit notes. The other adapters
(Stripe, the Factur-X PDF, the dunning job, the portal pages) come next, as in ``tariffs`` and ``settlement``;
see docs/billing.md.

Public surface: the names below, for the assembly (``evhub``); no other stage imports billing.
"""

from billing.cdr_hook import NotBilledNow, invoice_cdr
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
from billing.core.dunning import (
    DunningAction,
    DunningError,
    DunningRule,
    DunningSchedule,
    DunningStep,
    InvoiceStanding,
)
from billing.core.invoices import monthly_invoice, session_invoice
from billing.core.issuers import Issuer
from billing.core.lines import CdrComponent, Dimension, PricedCdr, cdr_lines, fee_line
from billing.core.numbering import NumberingError, Series
from billing.core.vat import VatTreatment, treatment_for
from billing.crediting import credit_invoice
from billing.desk import Desk
from billing.dunning_job import dun as run_dunning
from billing.monthly_job import issue_monthly_invoice
from billing.payments.bank_transfers import record_bank_transfer
from billing.payments.collection import collect_invoice
from billing.payments.ledger import PaymentError, PaymentItem, list_payments
from billing.payments.provider import PaymentProvider
from billing.payments.provider import ProviderError as PaymentProviderError
from billing.payments.provider import ProviderUnavailable as PaymentProviderUnavailable
from billing.payments.refunds import refund_invoice
from billing.payments.setup import set_card as set_payment_card
from billing.payments.stripe_provider import provider_from_settings as payment_provider
from billing.store.accounts import fleet_account, party_account
from billing.store.b2b import SettlementDocumentsError
from billing.store.b2b import closed_runs as closed_settlement_runs
from billing.store.b2b import issue_run_documents as issue_settlement_documents
from billing.store.cdrs import priced_cdr
from billing.store.codec import load_credit_note, load_invoice
from billing.store.credits import credit_document, find_document, parse_amount
from billing.store.dunning import AccountDunning, StepView, invoice_by_number
from billing.store.dunning import account_statuses as dunning_statuses
from billing.store.dunning import invoice_steps as invoice_dunning_steps
from billing.store.holds import release_if_settled
from billing.store.issuers import IssuerError, add_issuer, get_issuer, list_issuers
from billing.store.issuers import from_row as issuer_of_row
from billing.store.issuers import set_registration_id as set_issuer_registration_id
from billing.store.issuing import (
    CREDIT_NOTE,
    INVOICE,
    BillingError,
    HeldOutsideVat,
    document_of,
    issue_cdr_credit_note,
    issue_session_invoice,
)
from billing.store.monthly import account_items, add_fleet_account, fleet_named, month_bounds
from billing.store.numbers import Allocated, allocate
from billing.store.printing import document_pdf
from billing.store.reports import REPORTS as BILLING_REPORTS
from billing.store.reports import ReportError, report_csv
from billing.store.schedules import DEFAULT_SCHEDULE as DEFAULT_DUNNING_SCHEDULE
from billing.store.schedules import set_schedule as set_dunning_schedule
from billing.store.schedules import stored_json as dunning_schedule_json

__all__ = [
    "BILLING_REPORTS",
    "CREDIT_NOTE",
    "DEFAULT_DUNNING_SCHEDULE",
    "INVOICE",
    "AccountDunning",
    "Address",
    "Allocated",
    "BillingError",
    "CdrComponent",
    "CreditError",
    "CreditNote",
    "Desk",
    "Dimension",
    "DocumentError",
    "DunningAction",
    "DunningError",
    "DunningRule",
    "DunningSchedule",
    "DunningStep",
    "HeldOutsideVat",
    "Identity",
    "Invoice",
    "InvoiceLine",
    "InvoiceStanding",
    "Issuer",
    "IssuerError",
    "NotBilledNow",
    "NumberingError",
    "PaymentError",
    "PaymentItem",
    "PaymentProvider",
    "PaymentProviderError",
    "PaymentProviderUnavailable",
    "PaymentTerms",
    "PricedCdr",
    "ReportError",
    "Series",
    "SettlementDocumentsError",
    "StepView",
    "SupplyPeriod",
    "Totals",
    "Unit",
    "VatBreakdown",
    "VatCategory",
    "VatTreatment",
    "account_items",
    "add_fleet_account",
    "add_issuer",
    "allocate",
    "cdr_lines",
    "closed_settlement_runs",
    "collect_invoice",
    "credit_document",
    "credit_for_cdr",
    "credit_invoice",
    "document_of",
    "document_pdf",
    "dunning_schedule_json",
    "dunning_statuses",
    "fee_line",
    "find_document",
    "fleet_account",
    "fleet_named",
    "full_credit",
    "get_issuer",
    "invoice_by_number",
    "invoice_cdr",
    "invoice_dunning_steps",
    "issue_cdr_credit_note",
    "issue_monthly_invoice",
    "issue_session_invoice",
    "issue_settlement_documents",
    "issuer_of_row",
    "list_issuers",
    "list_payments",
    "load_credit_note",
    "load_invoice",
    "month_bounds",
    "monthly_invoice",
    "parse_amount",
    "partial_credit",
    "party_account",
    "payment_provider",
    "priced_cdr",
    "record_bank_transfer",
    "refund_invoice",
    "release_if_settled",
    "report_csv",
    "run_dunning",
    "session_invoice",
    "set_dunning_schedule",
    "set_issuer_registration_id",
    "set_payment_card",
    "treatment_for",
]
