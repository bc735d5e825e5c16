"""Code every service shares: configuration, logging, HTTP plumbing, metrics, PostgreSQL and RabbitMQ.

Each service imports from here instead of carrying its own copy, so a fix to (say) request-id propagation
lands in all three at once.
"""
