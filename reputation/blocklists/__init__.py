"""Blocklist sweeps: the catalogue, DNS questions and the meaning of answers, the sweeper, check
runs and their chunks, listing history and rotation."""
