"""Partner exchange: agreements, quotes, execution, inbound and outbound transfers, settlement."""

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

router = APIGatewayRouter()
