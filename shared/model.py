"""The base of the domain's and the API's pydantic models: their schemas are built on first use.

A function imports many more models than one request uses (the API's routes, the event model, the
configs); building every validator at import was most of a cold start's own cost. Deferred, a
model's schema is built the first time it validates or is asked for its JSON schema (once per
container), so a request pays only for the models it uses.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
