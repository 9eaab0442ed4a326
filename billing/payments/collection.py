"""(stub) collecting an invoice through the account's payment provider."""

from __future__ import annotations
