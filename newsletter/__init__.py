"""newsletter: compose email newsletters as YAML in git, build them, send them reliably.

The path from YAML to inbox, one module per step:

    config.py      newsletter.toml -> Config
    source.py      YAML with line numbers, so every error can name FILE:LINE
    issue.py       issue YAML -> validated Issue (blocks, links)
    render.py      Issue -> Jinja2 -> MJML -> HTML -> inlined CSS, text part, web version
    build.py       writes build/<issue>/ atomically and summarises it
    subscribers.py the subscriber CSV, streamed and validated
    store/         all state (suppressions, ledger, log): SQLite or PostgreSQL behind one Store
    tokens.py      signed unsubscribe tokens
    message.py     the MIME message, built once per issue, filled per recipient
    ledger.py      who has been sent what: the resumable send record
    backends/      outbox, smtp, sendgrid: one small interface
    send.py        the send loop tying subscribers, ledger and a backend together
    web.py         unsubscribe endpoint and SendGrid webhook (ASGI, `newsletter serve`)
    webhook.py     SendGrid event webhook: signature check, events -> suppressions / delivery
    suppressions_csv.py  the suppression list as CSV, to reconcile with an ESP's export
"""

__version__ = "0.1.0"
