"""Dunning: a per-issuer schedule of what happens to an unpaid invoice, evaluated purely.

A :class:`DunningSchedule` is a list of rules, each ``days_after_due`` -> an action: retry the payment (every
``every_days``, at most ``times`` attempts), send a reminder, lower the spending limit, block the buyer's
tokens, charge a fee. :func:`next_steps` takes the invoice's standing (amount due, paid, due date, on hold),
the schedule, ``today`` and the keys of the steps already done, and returns the steps to do now, each naming
its rule, in schedule order. It is idempotent: a step is identified by its key (invoice, rule, occurrence), a
key already done is never returned again, so running the job twice on a day, or after a crash between doing a
step and recording it (the adapter records the key in the step's transaction), repeats nothing. A job that
missed days catches up with the latest occurrence of each rule only (a retry missed is not made up twice).

When the invoice is settled (or credited) after a block or a lower limit, one ``RELEASE`` step gives them back.
:func:`standing_of` makes the standing of an issued invoice from what was paid and its credit notes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from billing.core.documents import CreditNote, Invoice
from billing.core.en16931 import ZERO
from kernel.money import Money


class DunningError(ValueError):
    """A schedule that cannot be evaluated (duplicate rule names, a fee without an amount ...)."""


class DunningAction(StrEnum):
    RETRY_PAYMENT = "retry_payment"
    REMINDER = "reminder"
    LOWER_LIMIT = "lower_limit"
    BLOCK_TOKENS = "block_tokens"
    FEE = "fee"
    RELEASE = "release"  # not a rule: the step that lifts a block / limit once the invoice is settled


RESTRICTIONS = (DunningAction.LOWER_LIMIT, DunningAction.BLOCK_TOKENS)


@dataclass(frozen=True, slots=True)
class DunningRule:
    """``action`` at ``days_after_due`` (0: on the due date), repeated every ``every_days`` up to ``times``
    occurrences (a retry cap); ``fee`` for FEE, ``limit`` (the lowered spending limit) for LOWER_LIMIT."""

    name: str
    days_after_due: int
    action: DunningAction
    times: int = 1
    every_days: int = 0
    fee: Money | None = None
    limit: Money | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise DunningError("a dunning rule has a name")
        if self.action is DunningAction.RELEASE:
            raise DunningError("RELEASE is not a rule; it follows payment")
        if self.days_after_due < 0 or self.times < 1 or (self.times > 1 and self.every_days < 1):
            raise DunningError(
                f"rule {self.name}: days >= 0, times >= 1, and a repeat interval when repeated"
            )
        if (self.action is DunningAction.FEE) != (self.fee is not None) or (
            self.fee and self.fee.amount <= 0
        ):
            raise DunningError(f"rule {self.name}: a FEE rule, and only one, has a positive fee")
        if (self.action is DunningAction.LOWER_LIMIT) != (self.limit is not None):
            raise DunningError(f"rule {self.name}: a LOWER_LIMIT rule, and only one, has a limit")

    def occurrences(self, due_date: date) -> list[date]:
        start = due_date + timedelta(days=self.days_after_due)
        return [start + timedelta(days=self.every_days * n) for n in range(self.times)]


@dataclass(frozen=True, slots=True)
class DunningSchedule:
    """One issuer's rules (names unique)."""

    issuer: str
    rules: tuple[DunningRule, ...]

    def __post_init__(self) -> None:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise DunningError(f"issuer {self.issuer}: rule names must be unique")


@dataclass(frozen=True, slots=True)
class InvoiceStanding:
    """What dunning needs of an invoice: its amount due, what was paid and credited, its due date, whether it
    is on hold (disputed). Amounts in the invoice's currency."""

    invoice: str
    currency: str
    due_date: date
    amount_due: Decimal
    paid: Decimal = ZERO
    credited: Decimal = ZERO
    on_hold: bool = False

    @property
    def outstanding(self) -> Decimal:
        return self.amount_due - self.paid - self.credited


@dataclass(frozen=True, slots=True)
class DunningStep:
    """A step to do now: ``key`` identifies it for ever (record it when done); ``rule`` names its rule."""

    key: str
    invoice: str
    rule: str
    action: DunningAction
    occurrence: int
    scheduled: date
    fee: Money | None = None
    limit: Money | None = None


def standing_of(
    invoice: Invoice, paid: Decimal, credit_notes: Sequence[CreditNote], *, on_hold: bool = False
) -> InvoiceStanding:
    """An issued invoice's standing: due its BT-115, ``paid`` so far, credited by its ``credit_notes`` (their
    amounts due); a negative :attr:`~InvoiceStanding.outstanding` is a refund owed to the buyer."""
    if any(note.invoice_number != invoice.number for note in credit_notes):
        raise DunningError(f"a credit note of another invoice than {invoice.number}")
    return InvoiceStanding(
        invoice.number,
        invoice.currency,
        invoice.due_date,
        invoice.totals.payable,
        paid,
        sum((note.totals.payable for note in credit_notes), ZERO),
        on_hold,
    )


def step_key(invoice: str, rule: str, occurrence: int) -> str:
    return f"{invoice}:{rule}:{occurrence}"


def next_steps(
    standing: InvoiceStanding, schedule: DunningSchedule, today: date, done: Collection[str]
) -> tuple[DunningStep, ...]:
    """The steps due on ``today`` that are not in ``done`` (keys of the steps done before)."""
    for rule in schedule.rules:
        for money in (rule.fee, rule.limit):
            if money is not None and money.currency != standing.currency:
                raise DunningError(
                    f"rule {rule.name} is in {money.currency}, invoice {standing.invoice} in {standing.currency}"
                )
    restricted = any(
        key.startswith(f"{standing.invoice}:{rule.name}:")
        for rule in schedule.rules
        if rule.action in RESTRICTIONS
        for key in done
    )
    if standing.outstanding <= 0:
        key = step_key(standing.invoice, "release", 1)
        if restricted and key not in done:
            return (DunningStep(key, standing.invoice, "release", DunningAction.RELEASE, 1, today),)
        return ()
    if standing.on_hold:
        return ()
    steps = []
    for rule in schedule.rules:
        due = [(n, day) for n, day in enumerate(rule.occurrences(standing.due_date), 1) if day <= today]
        if not due:
            continue
        occurrence, day = due[-1]  # catch up with the latest occurrence only
        key = step_key(standing.invoice, rule.name, occurrence)
        if key in done:
            continue
        steps.append(
            DunningStep(key, standing.invoice, rule.name, rule.action, occurrence, day, rule.fee, rule.limit)
        )
    return tuple(steps)
