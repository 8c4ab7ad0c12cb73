"""Model defaults made without validation (`shared.model.field_default`) are what validation makes."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pydantic import BaseModel

import shared
from shared.model import Model


def _all_models() -> list[type[BaseModel]]:
    for module in pkgutil.walk_packages(shared.__path__, "shared."):
        importlib.import_module(module.name)
    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [Model]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _model_defaults() -> list[tuple[str, BaseModel]]:
    defaults: list[tuple[str, BaseModel]] = []
    for model in _all_models():
        for name, field in model.model_fields.items():
            values: Any = field.default if isinstance(field.default, tuple) else (field.default,)
            defaults += [(f"{model.__name__}.{name}", v) for v in values if isinstance(v, BaseModel)]
    return defaults


def test_every_model_default_equals_its_validated_twin() -> None:
    defaults = _model_defaults()
    # The config's and the catalogue's nested defaults are among them (the check is not vacuous).
    assert {"ProgramConfig.caps", "ProgramConfig.tiers", "Catalogue.gifts"} <= {name for name, _ in defaults}
    for name, default in defaults:
        given = {key: getattr(default, key) for key in default.model_fields_set}
        twin = type(default)(**given)
        assert default == twin, name
        assert default.model_fields_set == twin.model_fields_set, name
        # Python mode: a set's JSON list follows its iteration order, which two equal sets need not share.
        assert default.model_dump() == twin.model_dump(), name


def test_a_config_with_every_default_is_the_one_validation_makes() -> None:
    from shared.program.config import ProgramConfig

    # Given a config that names only what it must: every nested rule comes from a default
    config = ProgramConfig(program="p1", name="Program")
    # Then it is the config that reading its own JSON back gives
    assert ProgramConfig.model_validate_json(config.model_dump_json()) == config
