"""Channel records on moto: written only when they pass, secrets kept as SecureStrings by version, read
back by the functions' sources; files announced, received and reported."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import boto3
import pytest

from integrations.errors import ChannelDisabledError
from integrations.shopify import ShopifyConfig
from shared.channels.records import ChannelChangedError, ChannelExistsError, UnknownChannelError
from shared.errors import InvalidChannelError
from shared.infra import keys
from shared.program.config import ProgramConfig

if TYPE_CHECKING:
    from functions.services import Services
    from tests.integration.conftest import Clock

SHOP = "acme.myshopify.com"
SECRET = "shpss_0123456789abcdef"
PATH = "/pointbridge/dev/channels/"


@pytest.fixture
def acme(services: Services) -> Services:
    services.programs.publish(ProgramConfig(program="acme", name="Acme", currency="EUR"))
    services._channel_cache = 0  # every lookup reads the record: the tests change it between reads
    return services


def test_a_shop_is_stored_without_its_secret_which_is_a_securestring_by_version(acme: Services) -> None:
    record = acme.channels.create("shopify", "ACME.myshopify.com", "acme", {"include_tax": True}, SECRET, by="ops")
    assert (record.id, record.version, record.secret_version) == (SHOP, 1, 1)
    item = acme.table.get(keys.channel("shopify", SHOP))
    assert item is not None and SECRET not in str(item)
    parameter = boto3.client("ssm").get_parameter(Name=PATH + "shopify/" + SHOP, WithDecryption=True)["Parameter"]
    assert (parameter["Type"], parameter["Value"], parameter["Version"]) == ("SecureString", SECRET, 1)
    # The functions get the adapter's config, secret included
    config = acme.sources.shop(SHOP)
    assert isinstance(config, ShopifyConfig)
    assert config.webhook_secret.get_secret_value() == SECRET and config.include_tax
    assert config.currency.program_currency == "EUR"


def test_bad_records_are_refused_with_the_field_named_and_nothing_else_changes(acme: Services) -> None:
    acme.channels.create("shopify", SHOP, "acme", {}, SECRET, by="ops")
    square = {"notification_url": "https://x.example/Prod/webhooks/square/ML7Q2"}
    # A missing secret, an unknown program, a duplicate shop domain (in any case), a malformed signature key
    with pytest.raises(InvalidChannelError) as missing:
        acme.channels.create("shopify", "beta.myshopify.com", "acme", {}, None, by="ops")
    with pytest.raises(InvalidChannelError) as unknown:
        acme.channels.create("till", "store-1", "nope", {}, None, by="ops")
    with pytest.raises(ChannelExistsError) as duplicate:
        acme.channels.create("shopify", "Acme.MyShopify.com", "acme", {}, "shpss_another_secret_00", by="ops")
    with pytest.raises(InvalidChannelError) as malformed:
        acme.channels.create("square", "ML7Q2", "acme", square, "has spaces in it, not a key", by="ops")
    assert [e.value.context["field"] for e in (missing, unknown, duplicate, malformed)] == [
        "secret",
        "program",
        "id",
        "secret",
    ]
    # Nothing of them was written, and the shop keeps working with its own secret
    assert [r.id for r in acme.channels.all()] == [SHOP]
    names = [p["Name"] for p in boto3.client("ssm").describe_parameters()["Parameters"]]
    assert names == [PATH + "shopify/" + SHOP]
    assert acme.sources.shop(SHOP).webhook_secret.get_secret_value() == SECRET


def test_a_rotation_is_a_new_version_read_by_the_version_the_record_names(acme: Services, clock: Clock) -> None:
    acme.channels.create("shopify", SHOP, "acme", {}, SECRET, by="ops")
    clock.now += timedelta(minutes=1)
    rotated = acme.channels.change("shopify", SHOP, expected_version=1, by="ann", secret="shpss_rotated_secret_01")
    assert (rotated.version, rotated.secret_version, rotated.updated_by) == (2, 2, "ann")
    assert acme.sources.shop(SHOP).webhook_secret.get_secret_value() == "shpss_rotated_secret_01"
    # Settings change alone: the secret in force stays
    changed = acme.channels.change("shopify", SHOP, expected_version=2, by="ann", settings={"include_tax": True})
    assert (changed.version, changed.secret_version) == (3, 2)
    assert acme.sources.shop(SHOP).webhook_secret.get_secret_value() == "shpss_rotated_secret_01"
    # A change made on a stale version is refused, naming the current one
    with pytest.raises(ChannelChangedError) as stale:
        acme.channels.change("shopify", SHOP, expected_version=2, by="bob", settings={})
    assert stale.value.context["version"] == 3
    # A bad change is refused and the record stays as it was
    with pytest.raises(InvalidChannelError) as bad:
        acme.channels.change("shopify", SHOP, expected_version=3, by="bob", settings={"include_taxes": True})
    assert bad.value.field == "settings.include_taxes"
    assert acme.channels.get("shopify", SHOP).version == 3


def test_disabled_channels_are_refused_until_enabled(acme: Services) -> None:
    acme.channels.create("partner", "skyair", "acme", {}, None, by="ops")
    acme.channels.set_status("partner", "skyair", "disabled", expected_version=1, by="ops")
    with pytest.raises(ChannelDisabledError):
        acme.sources.partner("skyair")
    acme.channels.set_status("partner", "skyair", "active", expected_version=2, by="ops")
    assert acme.sources.partner("skyair").partner_id == "skyair"
    with pytest.raises(UnknownChannelError):
        acme.channels.get("partner", "nobody")
    assert [r.kind for r in acme.channels.all("partner")] == ["partner"]
    assert acme.channels.all("shopify") == []


def test_a_partner_file_is_announced_received_and_reported(acme: Services, clock: Clock) -> None:
    acme.channels.create("partner", "skyair", "acme", {}, None, by="ops")
    boto3.client("s3").create_bucket(Bucket="files")
    acme.settings = acme.settings.model_copy(update={"files_bucket": "files"})
    # An upload URL for one key under the partner's folder, its record waiting (with a TTL) for the file
    record, url, expires_at = acme.channel_files.announce("skyair", "feed.csv", "text/csv")
    assert record.key == f"partners/skyair/{record.file_id}/feed.csv" and record.status == "awaiting_upload"
    assert "X-Amz-Credential" in url and expires_at == clock.now + timedelta(minutes=15)
    waiting = acme.table.get(keys.channel_file("partner", "skyair", record.file_id))
    assert waiting is not None and int(waiting["expires"]) == int((expires_at + timedelta(days=1)).timestamp())
    # The splitter records what became of its rows under the same id, and the TTL goes
    boto3.client("s3").put_object(
        Bucket="files",
        Key=f"reports/{record.key}.json",
        Body=b'{"accepted": 1, "rejected": [{"line": 3, "code": "malformed_payload", "reason": "no points"}]}',
    )
    acme.channel_files.received("partner", "skyair", record.key, accepted=1, rejected=1)
    done = acme.table.get(keys.channel_file("partner", "skyair", record.file_id))
    assert done is not None and "expires" not in done and done["status"] == "processed"
    processed, report = acme.channel_files.report("partner", "skyair", record.file_id)
    assert (processed.accepted, processed.rejected) == (1, 1)
    assert report is not None and report["rejected"][0]["line"] == 3
    # A file dropped without an upload URL is recorded too, newest first
    clock.now += timedelta(seconds=5)
    acme.channel_files.received("partner", "skyair", "partners/skyair/manual.csv", accepted=4, rejected=0)
    page, more = acme.channel_files.page("partner", "skyair", None, 10)
    assert [f.name for f in page] == ["manual.csv", "feed.csv"] and not more
