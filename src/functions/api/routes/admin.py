"""Admin: programs, catalogues and agreements as versioned config; dry runs against drafts."""

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

router = APIGatewayRouter()
