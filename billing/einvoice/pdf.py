"""The PDF of an invoice or credit note: the HTML of :mod:`.html` printed by WeasyPrint as PDF/A-3b, with the
document's CII XML (:mod:`.cii_xml`) embedded as ``factur-x.xml`` by the ``factur-x`` library (Factur-X profile
EN 16931), which first validates the XML against the Factur-X EN 16931 XSD it ships.

:func:`embedded_xml` reads the XML back from a PDF (what a buyer's software does); :func:`validate_xml` is the
same XSD check on its own.

WeasyPrint loads Pango (a system library) when it is imported, so it is imported when a PDF is printed, not
when billing is: a hub on a machine without Pango still issues, stores and sends documents (their XML and HTML),
and printing says what is missing (:class:`PdfUnavailable`).
"""

from __future__ import annotations

import logging
from typing import Any

import facturx

from billing.core.documents import CreditNote, Invoice
from billing.einvoice.cii_xml import cii_xml
from billing.einvoice.html import render_html, title_of

Document = Invoice | CreditNote
LEVEL = "en16931"
log = logging.getLogger(__name__)


class EInvoiceError(ValueError):
    """A generated XML the official schema refuses (a bug to fix, never shown to a buyer), or a PDF without
    a Factur-X XML."""


class PdfUnavailable(RuntimeError):
    """PDF printing is not possible on this machine (WeasyPrint cannot load Pango)."""


def _weasyprint() -> Any:
    try:
        import weasyprint
    except OSError as err:  # Pango missing: libpango-1.0-0 and libpangoft2-1.0-0 on Debian/Ubuntu
        raise PdfUnavailable(f"invoice PDFs need Pango on this machine (WeasyPrint: {err})") from err
    return weasyprint


def validate_xml(xml: bytes) -> None:
    """EInvoiceError unless ``xml`` is valid against the Factur-X EN 16931 XSD shipped by ``factur-x``."""
    try:
        facturx.xml_check_xsd(xml, flavor="factur-x", level=LEVEL)
    except Exception as err:  # the library raises a bare Exception naming the XSD error
        raise EInvoiceError(str(err)) from err


def render_pdf(doc: Document, *, locale: str = "en", logo: str | None = None) -> bytes:
    """The Factur-X PDF of ``doc``: its HTML printed as PDF/A-3b, its CII XML embedded and validated.

    ``logo`` is a ``data:`` URI: printing fetches nothing else (no file, no network), so a logo reference from
    an issuer's row can neither read the server's files nor make it call out."""
    xml = cii_xml(doc)
    validate_xml(xml)
    weasyprint = _weasyprint()
    page = weasyprint.HTML(
        string=render_html(doc, locale=locale, logo=logo),
        url_fetcher=weasyprint.URLFetcher(allowed_protocols={"data"}),
    )
    printed = page.write_pdf(pdf_variant="pdf/a-3b")
    kind = title_of(doc)  # "Self-billed credit note" (261) as the HTML says, not "Credit note"
    metadata: dict[str, Any] = {
        "author": doc.seller.legal_name,
        "keywords": "Factur-X, EN 16931",
        "title": f"{doc.seller.legal_name}: {kind} {doc.number}",
        "subject": f"{kind} {doc.number} of {doc.issue_date.isoformat()}",
    }
    out = facturx.generate_from_binary(
        printed, xml, flavor="factur-x", level=LEVEL, check_xsd=False, pdf_metadata=metadata, lang=locale
    )
    log.info("rendered %s %s as Factur-X PDF (%d bytes)", kind.lower(), doc.number, len(out))
    return bytes(out)


def embedded_xml(pdf: bytes) -> bytes:
    """The Factur-X XML embedded in ``pdf``; EInvoiceError if there is none."""
    _name, xml = facturx.get_xml_from_pdf(pdf, check_xsd=False)
    if not xml:
        raise EInvoiceError("the PDF has no embedded Factur-X XML")
    return bytes(xml)
