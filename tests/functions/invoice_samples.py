"""Sample ``order.confirmed`` events and Amazon MQ for RabbitMQ Lambda events for the invoicer's tests."""

from __future__ import annotations

import base64
import json
from typing import Any

ORDER_ID = "3f" * 32  # 64 hex digits, like the gateway's order ids
OCCURRED_AT = "2026-11-29T17:04:05.000+00:00"
PRINCIPAL = {"sub": "5f0c-user-42", "name": "Ada Lovelace"}


def confirmed(order_id: str = ORDER_ID, **data: Any) -> dict[str, Any]:
    """An order.confirmed event as billing emits it (contract.saga): 3 copies of movie 7 at 12.50 (37.50) by
    Ada Lovelace; ``data`` overrides fields of its data."""
    body = {"movie_id": 7, "title": "The Third Man", "quantity": 3, "unit_price": "12.50",
            "total_amount": "37.50", "principal": dict(PRINCIPAL)}
    body.update(data)
    return {"event_id": "e-" + order_id[:8], "type": "order.confirmed", "order_id": order_id,
            "occurred_at": OCCURRED_AT, "data": body}


def mq_event(*bodies: bytes | str | dict, queue: str = "invoicer.saga",
             headers: dict | None = None) -> dict[str, Any]:
    """The event Lambda's Amazon MQ (RabbitMQ) source hands a function: base64 data per queue, string
    headers as byte lists (the shape AWS documents for rmqMessagesByQueue)."""
    def encoded(body: bytes | str | dict) -> str:
        raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        return base64.b64encode(raw).decode()

    lambda_headers = {name: {"bytes": list(value.encode())} for name, value in (headers or {}).items()}
    return {
        "eventSource": "aws:rmq",
        "eventSourceArn": "arn:aws:mq:eu-west-1:123456789012:broker:movies:b-0000",
        "rmqMessagesByQueue": {f"{queue}::/": [
            {
                "basicProperties": {"contentType": "application/json", "deliveryMode": 2, "priority": None,
                                    "headers": lambda_headers, "bodySize": 0},
                "redelivered": False,
                "data": encoded(body),
            }
            for body in bodies
        ]},
    }
