"""The Lambda functions: thin handlers over the domain (`shared`) and the adapters (`integrations`).

A function's cold start is the import of its handler module, which makes some 60,000 objects
(boto3's, pydantic's, powertools', ours) and drops almost none; the cyclic garbage collector walks
them again and again while they pile up, about a seventh of the import's CPU time. In a Lambda
process (AWS_LAMBDA_FUNCTION_NAME is set, by Lambda or by the sandbox) the collector is paused from
here until the handler module's last line calls `handler_loaded()`, which freezes what the import
made (later collections skip it) and resumes collecting. Elsewhere (tests, the CLI) nothing changes.
tests/unit/test_cold_start.py checks that every function's handler module ends so.
"""

from __future__ import annotations

import gc
import os

_paused = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
if _paused:
    gc.disable()


def handler_loaded() -> None:
    """The handler module is imported: keep its objects out of later collections, collect again."""
    global _paused
    if _paused:
        gc.freeze()
        gc.enable()
        _paused = False
