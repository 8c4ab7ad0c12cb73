"""Gifts between members of a program."""

from aws_lambda_powertools.event_handler.router import APIGatewayRouter

router = APIGatewayRouter()
