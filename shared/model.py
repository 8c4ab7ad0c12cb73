"""The base of the domain's and the API's pydantic models: their schemas are built on first use.

A function imports many more models than one request uses (the API's routes, the event model, the
configs); building every validator at import was most of a cold start's own cost. Deferred, a
model's schema is built the first time it validates or is asked for its JSON schema (once per
container), so a request pays only for the models it uses.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

M = TypeVar("M", bound=BaseModel)


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)


def field_default(model: type[M], **values: Any) -> M:
    """A model instance to serve as a field's default, made without building the model's validator.

    Writing `Caps()` in a class body validates, so it builds `Caps`'s schema at import, deferred or
    not (with pydantic's plugin lookup, a scan of every installed package's entry points, on the
    first one). The values given here are the field defaults or plain valid literals, so validation
    would change nothing; tests/unit/test_model.py checks every such default against its validated
    twin."""
    return model.model_construct(**values)
