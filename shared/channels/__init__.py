"""Channels as managed records: which shops, sellers, till feeds, partners and apps feed which program.

Each channel is a record of its own (`records.py`), written through `ChannelRegistry`
(`registry.py`), which refuses a bad record with the field named and leaves every other channel
as it was; its secret lives apart, as an SSM SecureString of its own (`store.py`). Files received
on a channel are recorded with their reports. What an adapter needs of a record is checked by
rules the caller provides (`integrations.channels`), so this area knows no adapter.
"""
