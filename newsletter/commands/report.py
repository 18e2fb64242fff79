"""`newsletter report [ISSUE] [--json]`"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from newsletter.commands._common import config_option, get_config
from newsletter.errors import NewsletterError

#: Rates that matter, and where trouble starts: Gmail's bulk-sender rules ask for spam
#: complaints under 0.3%; most ESPs suspend senders above 2-5% bounces.
THRESHOLDS = {"complaint_rate": 0.003, "bounce_rate": 0.02}
WHY = {"complaint_rate": "Gmail's limit for bulk senders is 0.3%",
       "bounce_rate": "above 2% ESPs and mailbox providers start to distrust the sender"}


def figures(counts: dict[str, int]) -> dict[str, Any]:
    """The counts with their rates (over the messages sent) and the thresholds they cross."""
    sent = counts["sent"]
    rates = {
        "bounce_rate": (counts["hard_bounces"] + counts["soft_bounces"]) / sent if sent else 0.0,
        "hard_bounce_rate": counts["hard_bounces"] / sent if sent else 0.0,
        "complaint_rate": counts["complaints"] / sent if sent else 0.0,
        "unsubscribe_rate": counts["unsubscribes"] / sent if sent else 0.0,
    }
    flags = [name for name, limit in THRESHOLDS.items() if rates[name] > limit]
    return {**counts, "rates": rates, "over_threshold": flags}


@click.command("report")
@click.argument("issue", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table.")
@config_option
def report_command(issue: Path | None, as_json: bool, config_path: Path | None) -> None:
    """How an issue did: sent, failed, uncertain, delivered, bounced, complaints, unsubscribes.

    Rates are over the messages sent; a bounce rate above 2% or a complaint rate above
    Gmail's 0.3% is flagged. Without ISSUE: every issue over time, as a table and as a
    chart (PNG) in build/report/. Opens are not tracked, by design (see the README).

    \b
    Example:
        newsletter report issues/2011-11-28-free-ales-bialiatski.yaml
        newsletter report
    """
    from newsletter.store import open_store, store_exists, target_of

    config = get_config(config_path, near=issue)
    if not store_exists(config):
        raise ReportError(f"{target_of(config)}: no state yet: nothing has been sent")
    store = open_store(config)  # migrated: a state file from before bounces gets its tables
    try:
        if issue is not None:
            slug = _slug(issue)
            data = {"issue": slug, **figures(store.report_counts(slug))}
            click.echo(json.dumps(data, indent=2) if as_json else _table(data))
            return
        rows = [{"issue": slug, **figures(store.report_counts(slug))} for slug in store.ledger_issues()]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("nothing has been sent yet")
        return
    click.echo(_overview(rows))
    chart = _chart(rows, config.build_dir / "report")
    click.echo(f"chart: {chart}")


class ReportError(NewsletterError):
    """Nothing to report, or the chart cannot be drawn or written."""


def _slug(issue: Path) -> str:
    """An issue file's slug (validated like `status` does), or a slug given as is."""
    if issue.suffix in (".yaml", ".yml"):
        from newsletter.compose.issue import load_issue
        from newsletter.paths import display

        return load_issue(issue, display=display(issue)).slug
    return issue.name


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _table(d: dict[str, Any]) -> str:
    r = d["rates"]
    lines = [
        f"issue        {d['issue']}",
        f"  sent {d['sent']:,} · failed {d['failed']:,} · uncertain {d['uncertain'] + d.get('sending', 0):,}",
        f"  delivered {d['delivered']:,} · deferred {d['deferred']:,} · dropped {d['dropped']:,}",
        f"  bounced {d['hard_bounces'] + d['soft_bounces']:,} (hard {d['hard_bounces']:,}, soft {d['soft_bounces']:,})"
        f" · bounce rate {_pct(r['bounce_rate'])}",
        f"  complaints {d['complaints']:,} · complaint rate {_pct(r['complaint_rate'])}",
        f"  unsubscribes {d['unsubscribes']:,} · unsubscribe rate {_pct(r['unsubscribe_rate'])}",
    ]
    for name in d["over_threshold"]:
        lines.append(f"  ! {name.replace('_', ' ')} {_pct(r[name])} is above {_pct(THRESHOLDS[name])}: {WHY[name]}")
    return "\n".join(lines)


def _overview(rows: list[dict[str, Any]]) -> str:
    width = max(len("issue"), *(len(r["issue"]) for r in rows))
    head = f"{'issue':<{width}}  {'sent':>9}  {'bounced':>8}  {'bounce%':>7}  {'complaints':>10}  {'unsubscribed':>12}"
    out = [head]
    for r in rows:
        mark = " !" if r["over_threshold"] else ""
        out.append(f"{r['issue']:<{width}}  {r['sent']:>9,}  {r['hard_bounces'] + r['soft_bounces']:>8,}  "
                   f"{_pct(r['rates']['bounce_rate']):>7}  {r['complaints']:>10,}  {r['unsubscribes']:>12,}{mark}")
    return "\n".join(out)


def _chart(rows: list[dict[str, Any]], folder: Path) -> Path:
    """list size, unsubscribes and bounces issue by issue, as a PNG. matplotlib is imported
    here only: no other command pays for it."""
    try:  # a bare Figure (no pyplot): no window, no global backend switch; PNG is drawn by Agg
        from matplotlib.figure import Figure
    except ImportError:
        raise ReportError("the chart needs matplotlib: pip install 'newsletter[report]'") from None

    names = [r["issue"] for r in rows]
    x = range(len(rows))
    fig = Figure(figsize=(max(6.0, 1.2 * len(rows)), 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(x, [r["sent"] for r in rows], marker="o", color="#1f4e79", label="sent (list size)")
    ax.set_ylabel("readers sent to")
    ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=8)
    ax2 = ax.twinx()
    ax2.bar([i - 0.2 for i in x], [r["unsubscribes"] for r in rows], width=0.4, color="#e69f00",
            label="unsubscribes")
    ax2.bar([i + 0.2 for i in x], [r["hard_bounces"] + r["soft_bounces"] for r in rows], width=0.4,
            color="#c0392b", label="bounces")
    ax2.set_ylabel("unsubscribes, bounces")
    fig.legend(loc="upper left", fontsize=8)
    fig.suptitle("Issue by issue")
    fig.tight_layout()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "issues.png"
        fig.savefig(path)
    except OSError as e:
        raise ReportError(f"{folder}: cannot write the chart: {e.strerror}") from None
    return path
