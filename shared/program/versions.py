"""Reading versioned config back: the live version and the history of a program, catalogue or agreement.

Every publish keeps its version (programs by `ProgramRepository.publish`, catalogues and
agreements by `Documents.publish`, both in `shared.program.store`), next to a LIVE pointer naming
the version in force. Nothing is ever overwritten, so the history is complete; what an entry was
computed under is the version on it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field

from shared.errors import UnknownAgreementError, UnknownCatalogueError, UnknownProgramError
from shared.infra import keys
from shared.model import Model

if TYPE_CHECKING:
    from collections.abc import Callable

    from shared.errors import NotFoundError
    from shared.program.store import Documents, StoredVersion

MAX_PAGE = 50


class ConfigKind(StrEnum):
    """What a versioned configuration document configures."""

    PROGRAM = "program"
    CATALOGUE = "catalogue"
    AGREEMENT = "agreement"


_PARTITIONS: dict[ConfigKind, tuple[Callable[[str], str], str, type[NotFoundError]]] = {
    ConfigKind.PROGRAM: (keys.program_pk, keys.CONFIG_PREFIX, UnknownProgramError),
    ConfigKind.CATALOGUE: (keys.catalogue_pk, keys.DOCUMENT_PREFIX, UnknownCatalogueError),
    ConfigKind.AGREEMENT: (keys.agreement_pk, keys.DOCUMENT_PREFIX, UnknownAgreementError),
}


class ConfigVersion(Model):
    """One published version of a configuration."""

    model_config = ConfigDict(frozen=True)

    version: Annotated[int, Field(description="The version number.")]
    live: Annotated[bool, Field(description="Whether this version is the one in force.")]
    published_at: Annotated[
        AwareDatetime | None,
        Field(description="When it was published; null for versions published before the time was recorded."),
    ]
    config: Annotated[
        dict[str, Any],
        Field(description="The document as published: a PUT of it (with a higher version) publishes it again."),
    ]


class ConfigHistory(Model):
    """A page of a configuration's versions, oldest first."""

    model_config = ConfigDict(frozen=True)

    kind: Annotated[ConfigKind, Field(description="What is configured.")]
    id: Annotated[str, Field(description="The program's or agreement's id.")]
    live_version: Annotated[int, Field(description="The version in force.")]
    versions: Annotated[tuple[ConfigVersion, ...], Field(description="The versions, oldest first.")]
    next: Annotated[int | None, Field(description="Pass as `after` for the next page; null on the last.")]


def history(documents: Documents, kind: ConfigKind, ident: str, after: int = 0, limit: int = 20) -> ConfigHistory:
    key, prefix, missing = _PARTITIONS[kind]
    live_version = documents.live_version(key(ident))
    if live_version is None:
        raise missing(f"no {kind} {ident!r} was ever published")
    limit = max(1, min(limit, MAX_PAGE))
    found = documents.versions(key(ident), prefix, after, limit + 1)
    page = [_version(item, live_version) for item in found[:limit]]
    return ConfigHistory(
        kind=kind,
        id=ident,
        live_version=live_version,
        versions=tuple(page),
        next=page[-1].version if len(found) > limit else None,
    )


def live(documents: Documents, kind: ConfigKind, ident: str) -> ConfigVersion:
    key, prefix, missing = _PARTITIONS[kind]
    live_version = documents.live_version(key(ident))
    if live_version is None:
        raise missing(f"no {kind} {ident!r} was ever published")
    found = documents.versions(key(ident), prefix, live_version - 1, 1)
    return _version(found[0], live_version)


def _version(stored: StoredVersion, live_version: int) -> ConfigVersion:
    return ConfigVersion(
        version=stored.version,
        live=stored.version == live_version,
        published_at=stored.published_at,
        config=json.loads(stored.body),
    )
