"""`newsletter serve`: the unsubscribe endpoint and the SendGrid webhook, under uvicorn."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import click

from newsletter.commands._common import config_option, get_config
from newsletter.errors import NewsletterError


class ServeError(NewsletterError):
    """The server cannot start (no signing key, bad webhook key, unusable address)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8025, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--development-key", is_flag=True,
              help="Accept links signed with the development key (outbox and dry-run messages) when "
                   "NEWSLETTER_SECRET is unset. Loopback addresses only; never for real readers.")
@config_option
def serve_command(host: str, port: int, development_key: bool, config_path: Path | None) -> None:
    """Serve /unsubscribe/<token> (page and RFC 8058 one-click) and /webhooks/sendgrid.

    Needs NEWSLETTER_SECRET (the key the send signed its links with); keys listed in
    NEWSLETTER_OLD_SECRETS are still accepted. Put it behind your HTTPS reverse proxy at
    the [site] base_url of newsletter.toml. To run it under another ASGI server, use the
    factory `newsletter.audience.web:app_factory` (config from NEWSLETTER_CONFIG), e.g. with
    several workers: `uvicorn --factory newsletter.audience.web:app_factory --workers 4`.

    \b
    Example:
        NEWSLETTER_SECRET=... newsletter serve --host 127.0.0.1 --port 8025
    """
    import uvicorn

    from newsletter.audience.secrets import MissingSecret
    from newsletter.audience.web import DEFAULT_HEADER_TIMEOUT, create_app, header_deadline_protocol

    config = get_config(config_path)
    if development_key and not _is_loopback(host):
        raise ServeError(f"--development-key only listens on a loopback address, not {host}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(config, allow_development=development_key)
    except MissingSecret as e:
        raise ServeError(f"{e}; the server refuses to start without it "
                         "(--development-key previews outbox links on loopback)") from None
    click.echo(f"serving {config.list_name} on http://{host}:{port}/unsubscribe/<token> and /webhooks/sendgrid",
               err=True)
    header_timeout = int((config.web or {}).get("header_timeout_seconds") or DEFAULT_HEADER_TIMEOUT)
    uvicorn.run(app, host=host, port=port, access_log=False, proxy_headers=True, server_header=False,
                log_level="info", timeout_graceful_shutdown=5, http=header_deadline_protocol(header_timeout))
