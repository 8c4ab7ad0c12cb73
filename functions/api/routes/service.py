"""The service itself: a health check with no key and no I/O."""

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import Field

from shared.model import Model

router = APIGatewayRouter()


class Health(Model):
    """The service answers."""

    status: str = Field(description='Always "ok".')


@router.get("/health")
def health() -> Health:
    """Health check.

    Answers without a key and without reading anything: whether the API function runs.
    """
    return Health(status="ok")
