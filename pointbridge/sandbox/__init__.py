"""A local stand-in for the SAM stack: template.yaml's resources in moto, its functions in worker
processes, its event sources polled like Lambda polls them. See docs/sandbox.md."""

from pointbridge.sandbox.core import Invocation, Sandbox
from pointbridge.sandbox.runtime import InvocationError

__all__ = ["Invocation", "InvocationError", "Sandbox"]
