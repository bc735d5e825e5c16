"""The invoice of a confirmed order as a PDF (fpdf2, pure Python).

Deterministic: the same order renders to the same bytes, so re-rendering it (a redelivered event) gives the
same sha256 and the store can recognise the document it already has. fpdf2 puts the time of rendering into the
document in two places, the ``/CreationDate`` and the file identifier (``/ID``, a hash over the content and that
date); both are fixed to the order's date here. No XMP metadata (it would add a modification time), compression
by zlib (deterministic for one zlib), the producer string names fpdf2's version: a new fpdf2 may render other
bytes, which the store treats as the invoice already issued (``handler.store_invoice``).

Text uses the PDF core font Helvetica (nothing to embed, nothing read from disk): it covers Latin-1, so
characters outside it (a title in Japanese, an emoji) are printed as ``?`` after Unicode compatibility
normalisation (which maps ligatures, full-width forms and the like to Latin letters first).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from fpdf import FPDF

from contract import invoices as C

#: Longest title printed (a longer one is cut with an ellipsis): the invoice is one page.
MAX_TITLE_CHARS = 300
#: Column widths (mm) of the line table: item, movie id, quantity, unit price, total (sum = 180, A4 - margins).
_COLUMNS = (78, 22, 18, 31, 31)


@dataclass(frozen=True)
class InvoiceLine:
    """What an invoice shows: one confirmed order of one movie."""

    order_id: str
    ordered_at: datetime
    principal: str
    movie_id: int
    title: str | None
    quantity: int
    unit_price: Decimal
    total_amount: Decimal
    seller: str = C.SELLER_NAME
    buyer_sub: str | None = None
    """The principal's ``sub``, echoed in ``invoice.ready`` so billing finds the order's shard."""


def latin1(text: str) -> str:
    """``text`` as the core fonts can print it: compatibility-normalised, control characters dropped, anything
    outside Latin-1 as ``?``."""
    normal = unicodedata.normalize("NFKC", text)
    printable = "".join(ch for ch in normal if unicodedata.category(ch)[0] != "C")
    return printable.encode("latin-1", "replace").decode("latin-1")


def money(amount: Decimal) -> str:
    """An amount with two decimals and the currency: ``1,234.50 EUR``."""
    return f"{amount.quantize(Decimal('0.01')):,.2f} {C.CURRENCY}"


def _title(line: InvoiceLine) -> str:
    title = (line.title or "").strip() or f"Movie {line.movie_id}"
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1] + "\u2026"
    return latin1(title)


def render(line: InvoiceLine) -> bytes:
    """The PDF of ``line``: the same bytes every time for the same line (see the module's note)."""
    ordered_at = line.ordered_at.astimezone(UTC)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_creation_date(ordered_at)  # never "now": the bytes must not depend on when it is rendered
    pdf.set_title(latin1(f"Invoice {line.order_id}"))
    pdf.set_author(latin1(line.seller))
    pdf.set_creator("movies invoicer")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 20)
    pdf.cell(0, 12, "INVOICE", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, latin1(line.seller), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    for label, value in (
        ("Invoice / order", line.order_id),
        ("Date", ordered_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Buyer", line.principal),
    ):
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(32, 6, label)
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(0, 6, latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)

    pdf.set_font("Helvetica", "B", 10)
    pdf.set_fill_color(230, 230, 230)
    headings = ("Item", "Movie id", "Quantity", "Unit price", "Total")
    for width, heading in zip(_COLUMNS, headings, strict=True):
        pdf.cell(width, 8, heading, border=1, fill=True, align="L" if heading == "Item" else "R")
    pdf.ln()
    pdf.set_font("Helvetica", "", 10)
    # The title may wrap: the row is as tall as the item cell, the other cells follow its height.
    title, top = _title(line), pdf.get_y()
    height = 7 * len(pdf.multi_cell(_COLUMNS[0], 7, title, dry_run=True, output="LINES"))
    pdf.multi_cell(_COLUMNS[0], 7, title, border=1, new_x="RIGHT", new_y="TOP")
    cells = (str(line.movie_id), str(line.quantity), money(line.unit_price), money(line.total_amount))
    for width, text in zip(_COLUMNS[1:], cells, strict=True):
        pdf.cell(width, height, text, border=1, align="R")
    pdf.set_xy(pdf.l_margin, top + height)
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(sum(_COLUMNS[:-1]), 8, "Total due", align="R")
    pdf.cell(_COLUMNS[-1], 8, money(line.total_amount), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 5, "Thank you for your purchase. This invoice was issued when the order was confirmed; "
                   "it is the same document however often it is downloaded.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
