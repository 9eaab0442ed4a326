"""The ``{number:docnumber}`` path parameter of ``/api/billing/invoices/{number}/...``: a document number may
contain ``/`` (a series such as ``INV/2026/``), so one path segment is not enough.

A number is one or more segments; every segment after the first holds something other than lowercase letters,
so a route's own trailing word (``/pdf``, ``/credit``, ``/dunning``, ``/payments``) is never taken as part of the
number, whichever route the router tries first. Series prefixes are upper case, digits, ``_`` and ``/``
(:class:`billing.core.numbering.Series`), so no issued number ends in such a word. Importing this module
registers the convertor; the API modules import it before declaring their routes. :func:`filename` makes a
number safe as a download's file name.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

DOCUMENT_NUMBER = r"[^/]+(?:/(?![a-z]+(?:/|$))[^/]+)*"


class DocumentNumberConvertor(Convertor[str]):
    """A document number in a path, with its ``/``s (the regex above)."""

    regex = DOCUMENT_NUMBER

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("docnumber", DocumentNumberConvertor())


def filename(number: str, suffix: str = ".pdf") -> str:
    """``number`` as a file name: any character but letters, digits, ``-``, ``_`` and ``.`` becomes ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in number) + suffix
