from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from integrations.app_events import AppEventConfig, parse_app_event
from integrations.errors import MalformedPayloadError, StaleWebhookError
from shared.events.model import BehaviourAction, IdentityKind
from tests.unit.adapter_helpers import load, raw

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CONFIG = AppEventConfig(program="acme", app_id="ios")


def body(**changes: Any) -> dict[str, Any]:
    payload = load("app_review.json")
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not None}


def test_a_review_becomes_a_behaviour_event_for_our_member() -> None:
    # Given the app's review body
    # When it is parsed
    event = parse_app_event(raw("app_review.json"), CONFIG, now=NOW)

    # Then the member is ours and the event is keyed by the app's event id
    assert event.action is BehaviourAction.REVIEW and event.subject == "sku:IPOD2008PINK"
    assert event.identity.kind is IdentityKind.MEMBER and event.identity.value == "mbr_01JD8XK3"
    assert event.source == "app:ios" and event.external_id == "0b7c1a52-4f5e-4b55-9a0c-7d1c0f6f2a11"


@pytest.mark.parametrize("action", ["sign_in", "birthday", "member_day"])
def test_actions_without_a_subject_are_accepted(action: str) -> None:
    event = parse_app_event(body(action=action, subject=None), CONFIG, now=NOW)
    assert event.action == action and event.subject == ""


def test_a_referral_names_someone_else() -> None:
    event = parse_app_event(body(action="referral", subject="mbr_FRIEND"), CONFIG, now=NOW)
    assert event.subject == "mbr_FRIEND"
    with pytest.raises(MalformedPayloadError, match="refer themselves"):
        parse_app_event(body(action="referral", subject="mbr_01JD8XK3"), CONFIG, now=NOW)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"{", "not JSON"),
        (json.dumps(body(action="dance")).encode(), "action"),
        (json.dumps(body(member_id=None)).encode(), "member_id"),
        (json.dumps(body(member_id="a b")).encode(), "member_id"),
        (json.dumps(body(occurred_at="2026-11-25T09:00:00")).encode(), "occurred_at"),
        (json.dumps(body(extra="x")).encode(), "extra"),
        (json.dumps(body(action="review", subject=None)).encode(), "needs a subject"),
    ],
)
def test_invalid_bodies_are_refused_with_the_field_named(payload: bytes, match: str) -> None:
    with pytest.raises(MalformedPayloadError, match=match):
        parse_app_event(payload, CONFIG, now=NOW)


@pytest.mark.parametrize("offset", [timedelta(days=-3), timedelta(hours=1)])
def test_old_or_future_events_are_stale(offset: timedelta) -> None:
    with pytest.raises(StaleWebhookError):
        parse_app_event(body(occurred_at=(NOW + offset).isoformat()), CONFIG, now=NOW)
