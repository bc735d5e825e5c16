"""The contract between the processes of this system: every name that more than one of them must agree on.

Services (``services/``), the CDK stacks (``stacks/``), the local system (``local_system/``), the container
checks and the tests all import these modules instead of spelling the names out, so adding a queue, a header,
a permission or an environment variable is one edit here plus its use. Standard library only: the local
system imports it without the virtualenv, and each container image carries a copy.

- :mod:`contract.services`    service names, ports, databases, process model
- :mod:`contract.messaging`   queues and their dead-letter queues, AMQP headers, the HTTP request-id header
- :mod:`contract.permissions` API permissions, the OAuth resource server and the group -> permission map
- :mod:`contract.environment` every environment variable a service reads, with its default and meaning
- :mod:`contract.saga`        the purchase saga: topic exchange, events, consumer queues, the event envelope
- :mod:`contract.limits`      limits of the public API that one service enforces and another documents
- :mod:`contract.claim_check` the claim check: the 64 KiB inline limit, the S3 key layout, the header
- :mod:`contract.invoices`    invoices: key layout, invoicer settings, seller, currency, download lifetime
"""
