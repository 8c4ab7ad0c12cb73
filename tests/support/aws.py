"""Tables under moto's mock_aws are created from template.yaml itself, by the sandbox's provisioner."""

from __future__ import annotations

from pointbridge.tables import create_table

__all__ = ["create_table"]
