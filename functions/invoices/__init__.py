"""The invoicer: renders the invoice of a confirmed order as a PDF, stores it in S3, announces it by claim check.

``render`` draws the document (fpdf2), ``events`` reads ``order.confirmed`` (the saga's envelope) and builds
``invoice.ready``, ``store`` writes the PDF once, ``broker`` logs in to RabbitMQ and publishes with confirms,
``handler`` is the job (``handle``) and the Lambda entry point (Amazon MQ for RabbitMQ event source); the local
system runs ``handle`` under ``local_system/invoicer_runner.py``.
"""
