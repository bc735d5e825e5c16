"""The invoicer: renders the invoice of a confirmed order as a PDF, stores it in S3, answers the claim check.

``render`` draws the document (fpdf2), ``events`` reads ``order.confirmed`` and builds ``invoice.ready``,
``handler`` stores the document and is the Lambda entry point (Amazon MQ for RabbitMQ event source).
"""
