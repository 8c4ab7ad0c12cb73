"""The service itself: a health check with no key and no I/O."""

from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, Field

router = APIGatewayRouter()


class Health(BaseModel):
    """The service answers."""

    status: str = Field(description='Always "ok".')


@router.get("/health")
def health() -> Health:
    """Health check.

    Answers without a key and without reading anything: whether the API function runs.
    """
    return Health(status="ok")
