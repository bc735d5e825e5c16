"""The invoice PDF and the invoicer's messages, without S3: rendering, reading order.confirmed, invoice.ready.

The PDFs are read back with pypdf (requirements-dev.txt): parsed, text extracted, metadata read.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from decimal import Decimal

import pypdf
import pytest

from contract import invoices as C
from contract import saga
from functions.invoices.events import Malformed, claim_check, invoice_ready, parse_confirmed
from functions.invoices.render import render
from tests.functions.invoice_samples import ORDER_ID, PRINCIPAL, confirmed


def text_of(document: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(document))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_invoice_is_a_pdf_naming_order_quantity_total_and_seller():
    """The rendered invoice parses as a PDF whose text names the order id, date, buyer, movie, quantity,
    unit price, total and seller."""
    document = render(parse_confirmed(confirmed()))
    assert document.startswith(b"%PDF-")
    text = text_of(document)
    for expected in (ORDER_ID, "2026-11-29 17:04:05 UTC", "Ada Lovelace", "The Third Man", "12.50 EUR", "37.50 EUR",
                     C.SELLER_NAME):
        assert expected in text, expected
    assert "The Third Man 7 3 12.50 EUR 37.50 EUR" in text  # the line: title, movie id, quantity, price, total


def test_same_order_renders_the_same_bytes():
    """Rendering one order twice gives byte-identical PDFs (the same sha256), so a replay is recognisable."""
    line = parse_confirmed(confirmed())
    assert hashlib.sha256(render(line)).hexdigest() == hashlib.sha256(render(line)).hexdigest()


def test_creation_date_is_the_orders_date_not_now():
    """The PDF's creation date is the order's time (not the time of rendering, which would change the bytes)."""
    metadata = pypdf.PdfReader(io.BytesIO(render(parse_confirmed(confirmed())))).metadata
    assert metadata.creation_date == datetime(2026, 11, 29, 17, 4, 5, tzinfo=UTC)


def test_another_order_renders_other_bytes():
    """Two orders differing only in quantity and total have different checksums (the sha256 tells them apart)."""
    one = render(parse_confirmed(confirmed()))
    other = render(parse_confirmed(confirmed(quantity=2, total_amount="25.00")))
    assert hashlib.sha256(one).digest() != hashlib.sha256(other).digest()


def test_title_outside_latin1_and_long_is_printed_not_refused():
    """A title with characters the core font lacks, and far too long, still renders a one-page invoice: the
    Latin-1 part is printed, the rest as '?', the title cut."""
    title = "Amélie " + "東京物語 " + "x" * 2000
    document = render(parse_confirmed(confirmed(title=title)))
    reader = pypdf.PdfReader(io.BytesIO(document))
    assert len(reader.pages) == 1
    assert "Amélie ????" in text_of(document)


@pytest.mark.parametrize("name", [None, "", "   "])
def test_buyer_without_a_name_is_named_by_sub(name):
    """A principal without a name (null or blank) is printed by its sub."""
    text = text_of(render(parse_confirmed(confirmed(principal={"sub": PRINCIPAL["sub"], "name": name}))))
    assert f"Buyer {PRINCIPAL['sub']}" in text


def test_missing_title_names_the_movie_by_id():
    """Without a title the line reads 'Movie <id>'."""
    data = confirmed()
    del data["data"]["title"]
    assert "Movie 7" in text_of(render(parse_confirmed(data)))


@pytest.mark.parametrize(
    ("change", "reason", "kind"),
    [
        ({"type": "order.placed"}, "not 'order.confirmed'", "not_for_invoicer"),
        ({"type": "order.shipped"}, "unknown event type", "unknown_type"),
        ({"order_id": "../../etc/passwd"}, "order_id must be", "invalid_value"),
        ({"occurred_at": "yesterday"}, "ISO 8601", "invalid_value"),
        ({"occurred_at": "2026-11-29T17:04:05"}, "time zone", "invalid_value"),
        ({"data": None}, "data must be a JSON object", "not_an_object"),
        ({"extra": 1}, "unknown field", "unknown_field"),
    ],
)
def test_malformed_envelope_is_refused_with_its_reason(change, reason, kind):
    """An envelope that is not an order.confirmed event (the saga's parser, then the invoicer's own checks)
    raises Malformed naming what is wrong, with a kind for the dead-letter header."""
    event = {**confirmed(), **change}
    with pytest.raises(Malformed, match=reason) as raised:
        parse_confirmed(event)
    assert raised.value.kind == kind


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"quantity": 0}, "quantity must be a whole number from 1 to 1000"),
        ({"quantity": True}, "quantity must be"),
        ({"unit_price": "12.505"}, "unit_price must be an amount"),
        ({"unit_price": "NaN"}, "unit_price must be an amount"),
        ({"unit_price": 12.5}, "unit_price must be an amount as text"),
        ({"total_amount": "40.00"}, "is not unit_price 12.50 x quantity 3"),
        ({"principal": "user-42"}, "principal must be an object"),
        ({"principal": {"sub": "", "name": "x"}}, "principal must be an object"),
        ({"movie_id": "7"}, "movie_id"),
        ({"title": 5}, "title must be a string"),
    ],
)
def test_malformed_data_is_refused_with_its_reason(data, reason):
    """Data that would make a wrong or self-contradicting invoice raises Malformed naming the field."""
    with pytest.raises(Malformed, match=reason):
        parse_confirmed(confirmed(**data))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_malformed(body):
    """Bytes that are not a JSON object raise Malformed, not a JSON or Unicode error."""
    with pytest.raises(Malformed):
        parse_confirmed(body)


def test_message_id_that_differs_from_the_event_id_is_malformed():
    """The AMQP message id must be the event id (the saga's rule for every consumer)."""
    with pytest.raises(Malformed, match="differs from event_id") as raised:
        parse_confirmed(confirmed(), message_id="another-id")
    assert raised.value.kind == "mismatch"


def test_amounts_are_read_exactly():
    """unit_price and total_amount are read as exact decimals from the event's amount text."""
    line = parse_confirmed(confirmed(unit_price="0.10", quantity=3, total_amount="0.30"))
    assert (line.unit_price, line.total_amount) == (Decimal("0.10"), Decimal("0.30"))


def test_invoice_ready_carries_the_claim_check_only():
    """invoice.ready is a valid saga event whose data is key, sha256 and size of the document."""
    document = render(parse_confirmed(confirmed()))
    claim = claim_check(C.invoice_key(ORDER_ID), document)
    event = invoice_ready(ORDER_ID, claim, datetime(2026, 11, 29, 17, 4, 5, tzinfo=UTC))
    parsed = saga.parse_event(event.body(), message_id=event.event_id, routing_key=saga.INVOICE_READY)
    assert (parsed.type, parsed.order_id) == (saga.INVOICE_READY, ORDER_ID)
    assert parsed.data == {"key": f"invoices/{ORDER_ID}.pdf", "sha256": hashlib.sha256(document).hexdigest(),
                           "size": len(document)}


def test_invoice_ready_of_one_order_is_always_the_same_event():
    """The event id is derived from the order id (a replay is the same event to the inbox), another order's
    differs."""
    claim = claim_check(C.invoice_key(ORDER_ID), b"%PDF")
    event = invoice_ready(ORDER_ID, claim, datetime(2026, 11, 29, 17, 4, 5, tzinfo=UTC))
    assert event.event_id == invoice_ready(ORDER_ID, claim, datetime.now(UTC)).event_id
    assert event.event_id != invoice_ready("ab" * 32, claim, datetime.now(UTC)).event_id


def test_invoice_key_refuses_what_is_not_an_order_id():
    """invoice_key builds invoices/<id>.pdf and refuses ids that could escape the prefix."""
    assert C.invoice_key("abc-1") == "invoices/abc-1.pdf"
    for bad in ("", "a/b", "a" * 65, "x\n"):
        with pytest.raises(ValueError):
            C.invoice_key(bad)
