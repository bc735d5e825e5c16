"""Monthly cost of each environment, computed from its synthesized CloudFormation templates (``make cost``)."""
