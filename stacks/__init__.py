"""AWS CDK application of the movies microservices system (one module per stack)."""
