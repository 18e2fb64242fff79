"""Compose: issue YAML (with line numbers) -> validated Issue -> Jinja2 -> MJML -> HTML -> build/<issue>/."""
