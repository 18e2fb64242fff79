"""Audience: who reads -- subscriber lists, signing keys and tokens, the unsubscribe web app, ESP webhooks."""
