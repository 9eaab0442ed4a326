"""The PDF is the HTML template printed, with the document's CII XML embedded as Factur-X: opening the PDF gives
back the very XML (through the ``factur-x`` library and through pypdf's attachments), and the HTML and the PDF
show the same number, VAT lines and totals."""

from __future__ import annotations

import base64
import io
import re
from dataclasses import replace

import pypdf
import pytest
from lxml import html as lxml_html

from billing.core.documents import CreditNote, Invoice
from billing.einvoice import cii_xml, embedded_xml, render_html, render_pdf
from billing.einvoice.pdf import EInvoiceError

from .einvoice_kit import consumer, credit_note_of_cdr, partial_credit_note, reverse_charged

DOCUMENTS = {
    "consumer two rates": consumer,
    "fleet reverse charge": reverse_charged,
    "credit note of a credit CDR": credit_note_of_cdr,
    "partial credit note": partial_credit_note,
}


def squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def pdf_text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return squeeze(" ".join(page.extract_text() for page in reader.pages))


def shown(page: str, css_class: str) -> list[str]:
    """The text of every element of ``css_class`` (a row of cells is joined by spaces)."""
    tree = lxml_html.fromstring(page)
    return [squeeze(" ".join(el.itertext())) for el in tree.find_class(css_class)]


@pytest.mark.parametrize("make", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_the_pdf_carries_the_xml_and_shows_what_the_html_shows(make) -> None:
    doc: Invoice | CreditNote = make()
    pdf = render_pdf(doc)
    assert pdf.startswith(b"%PDF-")
    assert embedded_xml(pdf) == cii_xml(doc)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert reader.attachments["factur-x.xml"] == [cii_xml(doc)]
    xmp = reader.xmp_metadata
    assert xmp is not None
    metadata = xmp.stream.get_data().decode()
    for tag in ("<pdfaid:part>3<", "<fx:ConformanceLevel>EN 16931<", "<fx:DocumentFileName>factur-x.xml<"):
        assert tag in metadata  # PDF/A-3 with the Factur-X extension schema, profile EN 16931

    page = render_html(doc)
    text = pdf_text(pdf)
    assert shown(page, "number") == [doc.number]
    assert doc.number in text
    vat_lines = shown(page, "vat-line")
    assert len(vat_lines) == len(doc.breakdown)
    totals = shown(page, "totals")[0]
    for money in re.findall(r"-?€[\d,]+\.\d{2}", totals):
        assert money in text
    for row in vat_lines:
        for money in re.findall(r"-?€[\d,]+\.\d{2}", row):
            assert money in text
    assert f"€{doc.totals.payable:,}" in totals
    for b in doc.breakdown:
        assert any(f"€{b.taxable:,}" in row and f"€{b.tax:,}" in row for row in vat_lines)


def test_dates_and_amounts_follow_the_locale() -> None:
    doc = consumer()
    page = render_html(doc, locale="de_DE")
    assert "Amount due 10,07 €" in shown(page, "totals")[0]
    assert shown(page, "issue-date") == ["01.07.2026"]
    assert "10,07" in pdf_text(render_pdf(doc, locale="de_DE"))


def test_a_pdf_without_an_e_invoice_is_refused() -> None:
    from weasyprint import HTML

    with pytest.raises(EInvoiceError):
        embedded_xml(HTML(string="<p>not an invoice</p>").write_pdf())


def test_the_logo_is_printed_from_a_data_uri_and_nothing_is_fetched(tmp_path) -> None:
    from PIL import Image

    png = tmp_path / "logo.png"
    Image.new("RGB", (40, 20), (200, 30, 30)).save(png)
    data_uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()

    def images(pdf: bytes) -> int:
        return sum(len(page.images) for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)

    doc = consumer()
    assert images(render_pdf(doc, logo=data_uri)) == 1
    assert images(render_pdf(doc, logo=png.as_uri())) == 0  # a file (or an http URL) is never read
    assert f'src="{data_uri}"' in render_html(doc, logo=data_uri)


def test_the_html_escapes_what_the_document_holds() -> None:
    doc = consumer()
    hostile = replace(doc, buyer=replace(doc.buyer, legal_name="<script>alert(1)</script> & Co"))
    page = render_html(hostile)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
