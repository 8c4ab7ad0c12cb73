"""Every item key of the one table, and nothing else: the only module that spells a key.

| item | PK | SK | GSI |
| --- | --- | --- | --- |
| member balance | M#<member> | P#<program>#BAL |  |
| hold (checkout, transfer) | M#<member> | P#<program>#HOLD#<hold id> | GSI1 H#<program>#<lapse day>[#<shard>] |
| lot | M#<member> | P#<program>#LOT#<expires>#<lot id> | GSI1 X#<program>#<due day>[#<shard>] |
| pending earn | M#<holder> | P#<program>#PEND#<entry id> | GSI1 N#<program>#<until day>[#<shard>] |
| tally (counter, set) | M#<member> | P#<program>#T#<name> |  |
| guard counter (limits) | M#<member> | P#<program>#LIMIT#... / GIFTS#... |  |
| member tier | M#<member> | P#<program>#TIER | GSI1 T#<program>#<review day>[#<shard>] |
| tier change record | M#<member> | P#<program>#TIERLOG#<at>#<to> |  |
| referral (of the referred) | M#<member> | P#<program>#REFERRAL |  |
| member profile | M#<member> | PROFILE |  |
| entry | E#<program>#<entry id> | E | GSI2 A#<program>#<member> / <seq> |
| identity link | ID#<identity key> | ID |  |
| channel record (shop, seller, till, partner, app) | CHANNEL#<kind>#<id> | CHANNEL | GSI1 CHANNELS / <kind>#<id> |
| file received on a channel, its report | FILES#<kind>#<id> | <file id> |  |
| program config | P#<program> | CFG#<version>, LIVE | GSI1 PROGRAMS / <program> (LIVE) |
| catalogue, agreement | CAT#<program>, AGR#<id> | DOC#<version>, LIVE |  |
| programs with holds | PROGRAMS | P#<program> |  |
| reward stock | REWARD#<program>#<reward> | STOCK |  |
| draw, its tickets | DRAW#<program>#<draw> | DRAW, T#<member> |  |
| API key (its hash) | KEY#<key id> | KEY | GSI1 KEYS / <created>#<key id> |
| Idempotency-Key claim, reply | IDEM#<principal> | KEY#<Idempotency-Key> |  |
| identity verification | M#<member> | VERIFY#<verification id> |  |
| one-time codes asked in an hour | CODES#<member or identity key>#<hour> | CODES |  |
| exchange quote | QUOTE#<quote id> | QUOTE |  |
| refunds waiting for order | W#<program>#<order entry id> | W |  |
| velocity window | W#<program>#<check>#<key>#<w> | W |  |
| flag, flag decision | FLAG#<program> | <member>, LOG#<member>#<at>#<id> |  |
| job progress | JOB#<job>#<program> | PROGRESS |  |
| reminder | REM#<program>#<member>#<date> | REM |  |
| settlement line | S#<program>#<day> | <partner>#<entry id> |  |
| figures counter, marker | F#<program>#<bucket>#<shard> | F; FM#<program>#<entry id> / FM |  |
| outbound event published (marker) | OUT#<event id> | OUT |  |
| stream record the watch failed on | FAIL#watch | <entry item's PK> |  |
| dropped file's run, its chunks | FILE#<file id> | RUN, CHUNK#<n> |  |

A member's balance, holds and lots of one program share a partition and sort together
(BAL < HOLD < LOT < PEND < T...), so one Query of the range BAL..LOT reads everything a debit needs.
Entries live in their own partitions: the entry's key is its idempotency key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from shared.infra.codec import ts
from shared.infra.counters import shard_of

if TYPE_CHECKING:
    from datetime import datetime

# Every time in a key is `codec.ts`: sortable UTC seconds; a `~` sorts after any of them.
AFTER_ALL = "~"


class ItemKey(NamedTuple):
    pk: str
    sk: str


# --- The ledger's member partition -------------------------------------------------------------


def member_pk(member: str) -> str:
    return f"M#{member}"


def _program_sk(program: str, rest: str) -> str:
    return f"P#{program}#{rest}"


def balance(program: str, member: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, "BAL"))


def lot(program: str, member: str, expires_at: datetime, lot_id: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, f"LOT#{ts(expires_at)}#{lot_id}"))


def lots_through(program: str, until: datetime | None) -> str:
    """The last sort key of a member's lots whose own expiry is at or before `until` (None: all lots)."""
    return _program_sk(program, f"LOT#{ts(until)}{AFTER_ALL}" if until is not None else f"LOT#{AFTER_ALL}")


def lots_on_day(program: str, day: str) -> str:
    """The sort-key prefix of a member's lots expiring on a UTC day (YYYY-MM-DD)."""
    return _program_sk(program, f"LOT#{day}")


def hold(program: str, member: str, hold_id: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, f"HOLD#{hold_id}"))


def holds_prefix(program: str) -> str:
    return _program_sk(program, "HOLD#")


def pending(program: str, member: str, entry_id: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, f"PEND#{entry_id}"))


def pending_prefix(program: str) -> str:
    return _program_sk(program, "PEND#")


def tally(program: str, member: str, name: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, f"T#{name}"))


def tier(program: str, member: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, "TIER"))


def tier_log(program: str, member: str, at: str, to_tier: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, f"TIERLOG#{at}#{to_tier}"))


def tier_log_prefix(program: str) -> str:
    return _program_sk(program, "TIERLOG#")


def referral(program: str, member: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, "REFERRAL"))


def profile(member: str) -> ItemKey:
    return ItemKey(member_pk(member), "PROFILE")


def verification(member: str, verification_id: str) -> ItemKey:
    return ItemKey(member_pk(member), f"VERIFY#{verification_id}")


def code_requests(counted: str, hour: str) -> ItemKey:
    """How many one-time codes a member, or an identity's keyed hash, asked for in one hour."""
    return ItemKey(f"CODES#{counted}#{hour}", "CODES")


# --- Guard counters (limits checked in the ledger's transaction) ------------------------------


def reward_stock(program: str, reward: str) -> ItemKey:
    return ItemKey(f"REWARD#{program}#{reward}", "STOCK")


def reward_limit(program: str, member: str, reward: str, period_start: str | None = None) -> ItemKey:
    """A member's count of one reward, ever (no period) or in the period starting on that date."""
    rest = f"LIMIT#{reward}" + (f"#{period_start}" if period_start else "")
    return ItemKey(member_pk(member), _program_sk(program, rest))


def gifts_sent(program: str, member: str, day: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, f"GIFTS#{day}"))


def exchanged(program: str, member: str, agreement: str, day: str) -> ItemKey:
    return ItemKey(member_pk(member), _program_sk(program, f"XLIMIT#{agreement}#{day}"))


def order_claim(program: str, member: str, order_id: str) -> ItemKey:
    """One order id earns once per member, whichever channel sends it (a guard in the earn's transaction)."""
    return ItemKey(member_pk(member), _program_sk(program, f"ORDER#{order_id}"))


def draw(program: str, draw_id: str) -> ItemKey:
    return ItemKey(f"DRAW#{program}#{draw_id}", "DRAW")


def draw_tickets(program: str, draw_id: str, member: str) -> ItemKey:
    return ItemKey(draw(program, draw_id).pk, f"{TICKET_PREFIX}{member}")


TICKET_PREFIX = "T#"


def draw_reveal_chunk(program: str, draw_id: str, chunk: int) -> ItemKey:
    """One slice of a revealed draw's frozen tickets: the draw item stays small whatever the entrants."""
    return ItemKey(draw(program, draw_id).pk, f"{REVEAL_PREFIX}{chunk:06d}")


REVEAL_PREFIX = "R#"


# --- Entries and their history ----------------------------------------------------------------


def entry(program: str, entry_id: str) -> ItemKey:
    return ItemKey(f"E#{program}#{entry_id}", "E")


def account_history_pk(program: str, member: str) -> str:
    return f"A#{program}#{member}"


def history_sk(seq: int) -> str:
    return f"{seq:012d}"


# --- GSI1: what is due on a day ---------------------------------------------------------------


class IndexKey(NamedTuple):
    GSI1PK: str
    GSI1SK: str


# A due day's index items are spread over this many partitions by member: every earn of a day with
# rolling expiry falls due on the same day, and one partition takes about 1,000 writes a second
# (docs/capacity.md). Shard 0 is spelt without a suffix, as every day key was before sharding, so
# items written then are read as shard 0 and need no migration. The jobs read a day's shards in order.
INDEX_DAY_SHARDS = 16


def index_shard(member: str) -> int:
    """A member's shard of every due-day index (stable across processes)."""
    return shard_of(member, INDEX_DAY_SHARDS)


def _day_pk(kind: str, program: str, day: str, shard: int) -> str:
    return f"{kind}#{program}#{day}" + (f"#{shard}" if shard else "")


def _day_pks(kind: str, program: str, day: str) -> list[str]:
    return [_day_pk(kind, program, day, shard) for shard in range(INDEX_DAY_SHARDS)]


def expiry_index_pks(program: str, day: str) -> list[str]:
    """The partitions of a UTC day of the expiry index, in the order the jobs read them."""
    return _day_pks("X", program, day)


def expiry_index(program: str, member: str, lot_id: str, due: datetime) -> IndexKey:
    """Where the expiry and reminder jobs find a lot: its due time's UTC day and the member's shard, then that time."""
    return IndexKey(_day_pk("X", program, ts(due)[:10], index_shard(member)), f"{ts(due)}#{member}#{lot_id}")


def hold_index_pks(program: str, day: str) -> list[str]:
    return _day_pks("H", program, day)


def hold_index(program: str, member: str, hold_id: str, lapses_at: datetime) -> IndexKey:
    return IndexKey(
        _day_pk("H", program, ts(lapses_at)[:10], index_shard(member)), f"{ts(lapses_at)}#{member}#{hold_id}"
    )


def pending_index_pks(program: str, day: str) -> list[str]:
    return _day_pks("N", program, day)


def pending_index(program: str, member: str, entry_id: str, until: datetime) -> IndexKey:
    return IndexKey(_day_pk("N", program, ts(until)[:10], index_shard(member)), f"{ts(until)}#{member}#{entry_id}")


def tier_index_pks(program: str, day: str) -> list[str]:
    return _day_pks("T", program, day)


def tier_index(program: str, member: str, due_at: str) -> IndexKey:
    return IndexKey(_day_pk("T", program, due_at[:10], index_shard(member)), f"{due_at}#{member}")


def through(moment: datetime) -> str:
    """An index sort-key bound that takes everything due at or before `moment` (`<ts>#...` < `<ts>~`)."""
    return f"{ts(moment)}{AFTER_ALL}"


# --- Program config and versioned documents ---------------------------------------------------

LIVE_SK = "LIVE"
LIVE_PROGRAMS = "PROGRAMS"  # GSI1PK of every program's LIVE item: the programs the jobs walk
CONFIG_PREFIX = "CFG#"
DOCUMENT_PREFIX = "DOC#"
LAST_VERSION = 999_999


def program_pk(program: str) -> str:
    return f"P#{program}"


def catalogue_pk(program: str) -> str:
    return f"CAT#{program}"


def agreement_pk(agreement: str) -> str:
    return f"AGR#{agreement}"


def version_sk(prefix: str, version: int) -> str:
    return f"{prefix}{version:06d}"


def live(pk: str) -> ItemKey:
    return ItemKey(pk, LIVE_SK)


def program_with_holds(program: str) -> ItemKey:
    return ItemKey(LIVE_PROGRAMS, program_pk(program))


def program_of_holds_sk(sk: str) -> str:
    return sk.removeprefix("P#")


# --- Identities ------------------------------------------------------------------------------


def identity(identity_key: str) -> ItemKey:
    return ItemKey(f"ID#{identity_key}", "ID")


# --- Channels: each record its own partition; listed through GSI1 -----------------------------

CHANNELS = "CHANNELS"  # GSI1PK of every channel record


def channel(kind: str, channel_id: str) -> ItemKey:
    return ItemKey(f"CHANNEL#{kind}#{channel_id}", "CHANNEL")


def channel_index(kind: str, channel_id: str) -> IndexKey:
    return IndexKey(CHANNELS, f"{kind}#{channel_id}")


def channel_file(kind: str, channel_id: str, file_id: str) -> ItemKey:
    return ItemKey(channel_files_pk(kind, channel_id), file_id)


def channel_files_pk(kind: str, channel_id: str) -> str:
    return f"FILES#{kind}#{channel_id}"


# --- Access -----------------------------------------------------------------------------------


API_KEYS = "KEYS"  # GSI1PK of every key: the listing, in the order keys were minted


def api_key(key_id: str) -> ItemKey:
    return ItemKey(f"KEY#{key_id}", "KEY")


def api_key_index(created_at: datetime, key_id: str) -> IndexKey:
    return IndexKey(API_KEYS, f"{ts(created_at)}#{key_id}")


def reply(principal: str, idempotency_key: str) -> ItemKey:
    return ItemKey(f"IDEM#{principal}", f"KEY#{idempotency_key}")


def quote(quote_id: str) -> ItemKey:
    return ItemKey(f"QUOTE#{quote_id}", "QUOTE")


# --- Ingest's waiting refunds, the watch's windows and flags -----------------------------------


def waiting_refunds(program: str, order_entry_id: str) -> ItemKey:
    return ItemKey(f"W#{program}#{order_entry_id}", "W")


def velocity_window(program: str, check: str, key: str, window: str) -> ItemKey:
    return ItemKey(f"W#{program}#{check}#{key}#{window}", "W")


def flag_pk(program: str) -> str:
    return f"FLAG#{program}"


def flag(program: str, member: str) -> ItemKey:
    return ItemKey(flag_pk(program), member)


def flag_log(program: str, member: str, at: str, decision_id: str) -> ItemKey:
    return ItemKey(flag_pk(program), f"{flag_log_prefix(member)}{at}#{decision_id}")


def flag_log_prefix(member: str) -> str:
    return f"LOG#{member}#"


# --- Jobs -------------------------------------------------------------------------------------


def job_progress(job: str, program: str) -> ItemKey:
    return ItemKey(f"JOB#{job}#{program}", "PROGRESS")


def reminder(program: str, member: str, day: str) -> ItemKey:
    return ItemKey(f"REM#{program}#{member}#{day}", "REM")


def settlement_day_pk(program: str, day: str) -> str:
    return f"S#{program}#{day}"


def settlement_line(program: str, day: str, partner: str, entry_id: str) -> ItemKey:
    return ItemKey(settlement_day_pk(program, day), f"{settlement_partner_prefix(partner)}{entry_id}")


def settlement_partner_prefix(partner: str) -> str:
    return f"{partner}#"


# --- Program figures (projection) -------------------------------------------------------------


def figures(program: str, bucket: str, shard: int) -> ItemKey:
    return ItemKey(f"F#{program}#{bucket}#{shard}", "F")


def figures_marker(program: str, entry_id: str) -> ItemKey:
    return ItemKey(f"FM#{program}#{entry_id}", "FM")


def outbound_marker(event_id: str) -> ItemKey:
    return ItemKey(f"OUT#{event_id}", "OUT")


# --- Stream records a consumer failed on (their last error, for the dead-letter redrive) ------

WATCH_FAILURES = "FAIL#watch"


def watch_failure(entry_pk: str) -> ItemKey:
    """One per entry whose stream record WatchFunction failed on, keyed by the entry item's PK."""
    return ItemKey(WATCH_FAILURES, entry_pk)


# --- Dropped files, split in chunks -----------------------------------------------------------

FILE_CHUNK_PREFIX = "CHUNK#"


def file_pk(file_id: str) -> str:
    return f"FILE#{file_id}"


def file_run(file_id: str) -> ItemKey:
    return ItemKey(file_pk(file_id), "RUN")


def file_chunk(file_id: str, index: int) -> ItemKey:
    return ItemKey(file_pk(file_id), f"{FILE_CHUNK_PREFIX}{index:06d}")
