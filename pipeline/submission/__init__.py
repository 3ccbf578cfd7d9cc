"""Submission internals: the competition's format and Kaggle's checks, the ledger, the local
leaderboard. `pipeline.submit` is the public entry point; nothing here imports it."""
