"""Rendered billing documents (issue 14): the EN 16931 CII XML (Factur-X profile EN 16931) of an invoice or a
credit note, its human-readable HTML, and the PDF rendered from that same HTML with the XML embedded.

:mod:`.cii_xml` is pure (a document in, bytes out); :mod:`.html` renders the one Jinja2 template
(``billing/templates/invoice.html``); :mod:`.pdf` prints it with WeasyPrint and embeds the XML with the
``factur-x`` library, which validates it against the Factur-X EN 16931 XSD it ships.
"""

from billing.einvoice.cii_xml import cii_xml
from billing.einvoice.html import render_html
from billing.einvoice.pdf import PdfUnavailable, embedded_xml, render_pdf, validate_xml

__all__ = ["PdfUnavailable", "cii_xml", "embedded_xml", "render_html", "render_pdf", "validate_xml"]
