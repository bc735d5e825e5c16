"""PLACEHOLDER so that `cdk synth` can package functions/broker_rotation (infra helper, issue 11).

The real rotation handler (createSecret / setSecret / testSecret / finishSecret against the RabbitMQ
management API) is written by another helper and replaces this file on merge. Deployed as is, it refuses to
rotate, so a rotation attempt fails loudly instead of pretending to succeed.
"""


def handler(event, context):
    """Refuse every rotation step: this is not the real handler."""
    raise NotImplementedError("functions/broker_rotation/handler.py is a placeholder; deploy the real handler")
