"""Channels in a sandbox as an operator makes them: records from a SOURCES-shaped document, and the
stack's identity hash key (the sandbox generates it, as CloudFormation does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from pointbridge.sandbox import Sandbox

SECTIONS = {"shopify": "shopify", "square": "square", "till": "till", "partners": "partner", "app": "app"}
SECRET_FIELDS = {"shopify": "webhook_secret", "square": "signature_key"}


def identity_key(sb: Sandbox) -> str:
    """The key the stack's functions hash e-mails and phones with."""
    return str(sb.client("secretsmanager").get_secret_value(SecretId=sb.resource("IdentityHashKey"))["SecretString"])


def channel_bodies(document: dict[str, Any]) -> list[dict[str, Any]]:
    """POST /admin/channels bodies for each channel of a SOURCES-shaped document."""
    bodies = []
    for section, kind in SECTIONS.items():
        for channel_id, config in document.get(section, {}).items():
            settings = {k: v for k, v in config.items() if k not in ("program", "identity_key")}
            body: dict[str, Any] = {"kind": kind, "id": channel_id, "program": config["program"], "settings": settings}
            if kind in SECRET_FIELDS:
                body["secret"] = settings.pop(SECRET_FIELDS[kind])
            bodies.append(body)
    return bodies


def create_channels(sb: Sandbox, document: dict[str, Any], admin_key: str) -> list[dict[str, Any]]:
    """Each channel created through the admin API (the program must be live)."""
    created = []
    for body in channel_bodies(document):
        reply = requests.post(f"{sb.api_url}/admin/channels", json=body, headers={"x-api-key": admin_key}, timeout=60)
        assert reply.status_code == 201, reply.text
        created.append(reply.json())
    return created
