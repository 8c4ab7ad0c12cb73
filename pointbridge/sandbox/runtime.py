"""Lambda functions in worker processes, one invocation at a time per worker, like Lambda instances.

Each worker is a spawned interpreter that gets the function's environment, imports the handler
once (its cold start) and then serves invocations. Replies cross the process boundary as JSON, as
Lambda serialises them, so a reply Lambda could not serialise fails here too.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_handler: Any = None
_settings: dict[str, Any] = {}


class InvocationError(Exception):
    """The handler raised, timed out, or returned something Lambda could not serialise."""

    def __init__(self, function: str, error_type: str, message: str, trace: str = "") -> None:
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message
        self.trace = trace


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: str
    environment: dict[str, str]
    memory_mb: int
    timeout_s: int
    # Where the function's stdout and stderr go (as CloudWatch Logs keeps one log per function);
    # None: the sandbox's own streams.
    log_file: str | None = None


class LambdaContext:
    """The attributes powertools and handlers read from Lambda's context object."""

    def __init__(self, settings: dict[str, Any], request_id: str, deadline: float) -> None:
        self.function_name: str = settings["name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn: str = settings["arn"]
        self.memory_limit_in_mb = int(settings["memory_mb"])
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _end_with_parent(parent: int) -> None:
    # A sandbox killed outright (SIGKILL, a test runner's timeout) cannot stop its pools, and
    # ProcessPoolExecutor's workers would wait on their queue for good, orphaned.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _init_worker(settings: dict[str, Any]) -> None:
    global _handler
    threading.Thread(target=_end_with_parent, args=(os.getppid(),), daemon=True, name="end-with-parent").start()
    if settings.get("log_file"):
        # Line-buffered, appended: several workers of one function share the file, line by line.
        log = Path(settings["log_file"]).open("a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives with the worker
        sys.stdout = sys.stderr = log
    os.environ.update(settings["env"])
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    sys.path.insert(0, settings["code_dir"])
    _settings.update(settings)
    module_name, _, attribute = settings["handler"].rpartition(".")
    try:
        _handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:
        # Reported on every invocation, as Lambda reports Runtime.ImportModuleError, rather than
        # breaking the pool with an opaque "process terminated abruptly".
        _settings["import_error"] = _error(exc, "Runtime.ImportModuleError")


def _error(exc: BaseException, error_type: str | None = None) -> str:
    return json.dumps(
        {
            "errorType": error_type or type(exc).__name__,
            "errorMessage": f"{type(exc).__name__}: {exc}" if error_type else str(exc),
            "stackTrace": traceback.format_exception(exc),
        }
    )


def _invoke_in_worker(event_json: str, request_id: str) -> tuple[bool, str]:
    if "import_error" in _settings:
        return False, str(_settings["import_error"])
    deadline = time.time() + float(_settings["timeout_s"])
    context = LambdaContext(_settings, request_id, deadline)
    try:
        reply = _handler(json.loads(event_json), context)
        return True, json.dumps(reply)
    except Exception as exc:  # any exception is an invocation error, reported to the caller
        return False, _error(exc)


class FunctionPool:
    """Up to `size` warm workers of one function; started on first use."""

    def __init__(self, spec: FunctionSpec, size: int) -> None:
        self.spec = spec
        self.size = size
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def _settings(self) -> dict[str, Any]:
        return {
            "env": self.spec.environment,
            "code_dir": self.spec.code_dir,
            "handler": self.spec.handler,
            "name": self.spec.name,
            "arn": self.spec.arn,
            "memory_mb": self.spec.memory_mb,
            "timeout_s": self.spec.timeout_s,
            "log_file": self.spec.log_file,
        }

    def _pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise InvocationError(self.spec.logical_id, "SandboxStopped", "the sandbox is stopping")
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.size,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self._settings(),),
            )
        return self._executor

    def invoke(self, event: Any) -> Any:
        request_id = str(uuid.uuid4())
        future = self._pool().submit(_invoke_in_worker, json.dumps(event), request_id)
        # A cold start's import is not charged to the handler's timeout, hence the slack.
        try:
            ok, payload = future.result(timeout=self.spec.timeout_s + 30)
        except FutureTimeout:
            # Lambda kills a timed-out instance; so do we, with every sibling (one pool per function).
            self.stop(kill=True)
            raise InvocationError(self.spec.logical_id, "Timeout", "Task timed out") from None
        except Exception as exc:  # a broken pool (worker died, import failed)
            self.stop(kill=True)
            raise InvocationError(self.spec.logical_id, type(exc).__name__, str(exc)) from exc
        if not ok:
            error = json.loads(payload)
            raise InvocationError(
                self.spec.logical_id, error["errorType"], error["errorMessage"], "".join(error["stackTrace"])
            )
        return json.loads(payload)

    def worker_pids(self) -> list[int]:
        """The process ids of the workers started so far (profilers tell functions apart by them)."""
        processes = (getattr(self._executor, "_processes", None) or {}) if self._executor is not None else {}
        return sorted(processes)

    def stop(self, kill: bool = False) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        if kill:
            for process in processes:
                process.kill()
        executor.shutdown(wait=True, cancel_futures=True)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)

    def close(self) -> None:
        self._closed = True
        self.stop()
