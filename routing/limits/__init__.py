"""Outbound spam policy: per-sender recipient limits in sliding windows shared by every
process and host, the actions taken when one is reached, and the restricted senders.

- `rules`: pure functions: who the sender is, which limit applies, what a message adds.
- `store`: the sliding windows and holds, in Redis (atomic Lua scripts) or the database.
- `checker`: the engine's step: a decision in, the decision with the limit's action out.
- `restrictions`: restricted senders as rows, their events, audit, and release.
"""
