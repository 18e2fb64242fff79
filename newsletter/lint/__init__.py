"""Lint: what `newsletter check` finds in a built issue before anyone is mailed."""
