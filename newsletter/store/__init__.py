"""Store: every table and every SQL statement of the project's state (suppressions, send ledger, actions)."""
