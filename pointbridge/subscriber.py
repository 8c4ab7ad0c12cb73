"""`pointbridge subscriber`: what a CRM receives, read from the stack's CRM queue (docs/events.md).

template.yaml's CrmEventsRule sends every outbound event on the notifications bus to CrmQueue; a
CRM reads that queue (or gets the same events POSTed to its endpoint, the HTTPS option). This is
the smallest such reader: it receives, drops duplicates by the event's id, prints one line per
event (the member's words in English, or the chosen language) and deletes what it printed.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pointbridge.cli import register

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable


@dataclass
class CrmSubscriber:
    sqs: Any
    queue_url: str
    language: str = "en"
    seen_ids: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    def poll(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        """Every event waiting now (new ones only: a redelivered id is counted and dropped)."""
        fresh: list[dict[str, Any]] = []
        while True:
            reply = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
            )
            messages = reply.get("Messages", [])
            if not messages:
                return fresh
            wait_seconds = 0
            for message in messages:
                event = json.loads(message["Body"])
                event_id = str(event.get("detail", {}).get("id", message["MessageId"]))
                if event_id in self.seen_ids:
                    self.duplicates += 1
                else:
                    self.seen_ids.add(event_id)
                    self.counts[str(event.get("detail-type"))] += 1
                    fresh.append(event)
                    self.received.append(event)
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def describe(self, event: dict[str, Any]) -> str:
        detail = event.get("detail", {})
        kind = str(event.get("detail-type"))
        words = detail.get("words") or {}
        told = words.get(self.language) or words.get("en")
        if told is None:
            facts = {k: v for k, v in detail.items() if k not in ("id", "program", "member", "code")}
            told = ", ".join(f"{k} {v}" for k, v in facts.items())
        return f"{kind:<22} {detail.get('member', ''):<10} {told}"

    def follow(self, stop: threading.Event, out: Callable[[str], None] = print) -> None:
        """Print events as they arrive until `stop` is set."""
        while not stop.is_set():
            for event in self.poll(wait_seconds=1):
                out(f"   CRM <- {self.describe(event)}")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=["en", "zh-CN"], default="en", help="the language of the members' words")
    parser.add_argument("--once", action="store_true", help="print what is waiting and exit")


def _run(args: argparse.Namespace) -> int:
    import signal

    import boto3

    from pointbridge.cli import live_sandbox

    live = live_sandbox()
    if live is None:
        print("no sandbox is running here: start one with `pointbridge sandbox` (or `make demo`)")
        return 1
    queue = live["resources"].get("CrmQueue")
    if queue is None:
        print("the running sandbox has no CrmQueue: restart it with this template")
        return 1
    sqs = boto3.client(
        "sqs",
        endpoint_url=live["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    subscriber = CrmSubscriber(sqs, str(queue["physical_id"]), language=args.lang)
    if args.once:
        for event in subscriber.poll():
            print(subscriber.describe(event))
        return 0
    print(f"reading {queue['physical_id']} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    subscriber.follow(stop, out=lambda line: print(line, flush=True))
    return 0


register("subscriber", "print the outbound events a CRM receives (the sandbox's CRM queue)", _configure, _run)
