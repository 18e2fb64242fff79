"""`newsletter preview`: the issue in a browser tab that keeps up with the editor.

A small HTTP server on loopback serves a page showing the issue as an inbox would list it
(sender, subject, preheader), the email at desktop or phone width, or its text part,
with one subscriber's fields filled in. It watches the issue file, the config and the
templates; on a change it rebuilds and tells the open tab over Server-Sent Events, and
the tab refreshes itself (it falls back to polling if the event stream closes). A build
that fails shows its error lines in the page and the terminal, keeps the last good email
on screen, and the server carries on.

Stdlib `http.server` is enough: one editor, one tab, loopback only.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from newsletter.audience.subscribers import Subscriber
from newsletter.compose import i18n
from newsletter.compose.build import GMAIL_CLIP_BYTES, SAMPLE_RECIPIENT, build_issue
from newsletter.compose.render import default_theme
from newsletter.config import Config, load_config
from newsletter.deliver.placeholders import DEFAULT, Template
from newsletter.errors import InputError, NewsletterError
from newsletter.store.db import email_key

HOST = "127.0.0.1"
UNSUBSCRIBE_PREVIEW = "/unsubscribe-preview"


class PreviewError(NewsletterError):
    """The preview cannot start (port taken, unknown --as address)."""


@dataclass
class State:
    """What the page shows: the last good email, and the current error if the last build failed."""

    version: int = 0
    subject: str = ""
    preheader: str = ""
    from_name: str = ""
    from_address: str = ""
    to: str = ""
    html: str = ""
    text: str = ""
    size_kb: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: The issue's editions (issues/<id>.<lang>.yaml) by language: subject, preheader, html, text,
    #: size_kb. The issue itself is the first; the page's language switch picks one.
    editions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"version": self.version, "subject": self.subject, "preheader": self.preheader,
                "from_name": self.from_name, "from_address": self.from_address, "to": self.to,
                "size_kb": round(self.size_kb, 1), "clip_kb": GMAIL_CLIP_BYTES // 1024, "errors": self.errors,
                "editions": {lang: {k: e[k] for k in ("subject", "preheader", "size_kb")}
                             for lang, e in self.editions.items()}}

    def edition(self, lang: str | None) -> dict[str, Any]:
        """What to show in `lang` (the issue itself if it has no such edition)."""
        found = self.editions.get(lang or "")
        if found is not None:
            return found
        return {"subject": self.subject, "preheader": self.preheader, "html": self.html, "text": self.text}


def recipient_values(config: Config, email: str | None, language: str,
                     warn: Callable[[str], None] | None = None) -> tuple[str, dict[str, str]]:
    """(address, merge fields) of the reader `email`, or of the list's first reader, or of a sample reader.

    `config` is the previewed issue's list (`config.for_issue(issue)`): its readers are who `send`
    mails, the list's CSV source and then its confirmed members in the store, so `--as` finds a
    signup that is only in the store. The store is read only if it exists (a preview never
    creates one). Without `email`, a store that cannot be read is reported through `warn` and
    the sample reader is shown: the editor still sees the issue."""
    from newsletter.audience.members import csv_source

    csv = csv_source(config)
    chosen = _csv_reader(csv, config, email)
    if chosen is None:
        try:
            chosen = _store_reader(config, email)
        except NewsletterError as e:
            if email:
                raise
            (warn or (lambda _line: None))(f"preview: the sample reader is shown: {e}")
    if email and chosen is None:
        where = f"not in {csv.name}, nor" if csv is not None else "not"
        raise PreviewError(f"--as {email}: no such reader on the list '{config.list_key}' ({config.list_name}): "
                           f"{where} a confirmed member in the store")
    unsubscribe = UNSUBSCRIBE_PREVIEW
    if chosen is None:
        return SAMPLE_RECIPIENT["email"], {**SAMPLE_RECIPIENT, "unsubscribe_url": unsubscribe}
    values = dict(chosen.fields)
    # the name's language fallback only where the placeholder names none ({{ name | default("friend") }})
    values.update(name=chosen.name, email=chosen.email, unsubscribe_url=unsubscribe)
    values["name" + DEFAULT] = i18n.gettext(chosen.language or language, "reader")
    return chosen.email, values


def _csv_reader(csv: Path | None, config: Config, email: str | None) -> Subscriber | None:
    """The reader `email` (else the first) of the list's CSV source; a file that cannot be read
    is an error only when a reader was asked for by address."""
    from newsletter.audience.subscribers import read_subscribers

    if csv is None or (email is None and not csv.is_file()):
        return None
    try:
        for row in read_subscribers(csv, default_language=config.default_language):
            if isinstance(row, Subscriber) and (email is None or email_key(row.email) == email_key(email)):
                return row
    except InputError:
        if email:
            raise
    return None


def _store_reader(config: Config, email: str | None) -> Subscriber | None:
    """The confirmed member `email` (else the first) of the list in the store, if there is a store."""
    from newsletter.store import open_store, store_exists

    if not store_exists(config):
        return None
    store = open_store(config, readonly=True, migrate=False)
    try:
        if store.schema_version() == 0:  # an empty database: nobody yet, and nothing to create
            return None
        if email is None:
            m = next(iter(store.members(config.list_key, page=1)), None)
            return None if m is None else Subscriber(email=m.email, name=m.name, language=m.language,
                                                     fields=m.fields, line=0)
        if store.membership(config.list_key, email) != "confirmed":
            return None
        p = store.person(email)["person"]
        return None if p is None else Subscriber(email=p["address"], name=p["name"], language=p["language"],
                                                 fields=p["fields"], line=0)
    finally:
        store.close()


class Preview:
    """Builds the issue on demand and wakes the pages waiting for a new version."""

    def __init__(self, issue: Path, config_path: Path, recipient: str | None = None,
                 log: Callable[[str], None] | None = None):
        self.issue = issue
        self.config_path = config_path
        self.recipient = recipient
        self.state = State()
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self._build_lock = threading.Lock()
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.config: Config | None = None
        self._watching: set[Path] = set()

    def rebuild(self) -> State:
        """Build once; on failure keep the last good email and record the error lines."""
        with self._build_lock:
            new = State(**{k: v for k, v in vars(self.state).items() if k != "errors"})
            try:
                config = load_config(self.config_path)
                self.config = config
                built = build_issue(self.issue, config, write=False)
                language, list_config = built.language, built.config  # the issue's list: its readers, its sender
                to, values = recipient_values(list_config, self.recipient, language, self.log)
                new.subject = Template(built.issue.subject).fill(values)
                new.preheader = Template(built.issue.preheader or "").fill(values)
                new.from_name, new.from_address, new.to = list_config.sender_name, list_config.sender_address, to
                new.html = Template(built.rendered.html, escape_html=True).fill(values)
                new.text = Template(built.rendered.text).fill(values)
                new.size_kb = built.sample_html_bytes() / 1024
                new.editions = {}
                if built.editions:
                    for e in built.all():
                        new.editions[e.language] = {
                            "subject": Template(e.issue.subject).fill(values),
                            "preheader": Template(e.issue.preheader or "").fill(values),
                            "html": Template(e.rendered.html, escape_html=True).fill(values),
                            "text": Template(e.rendered.text).fill(values),
                            "size_kb": round(e.sample_html_bytes() / 1024, 1)}
                new.errors = []
                self.log(f"rebuilt  {new.subject}  ({new.size_kb:.1f} KB)")
            except NewsletterError as e:
                new.errors = e.lines()
                for line in new.errors:
                    self.log(line)
            except Exception:  # noqa: BLE001 - a bug must not take the editor's preview down
                new.errors = ["internal error while building (details in the terminal):",
                              *traceback.format_exc().strip().splitlines()[-1:]]
                self.log(traceback.format_exc())
            with self.changed:
                new.version = self.state.version + 1
                self.state = new
                self.changed.notify_all()
            return new

    def wait(self, after: int, timeout: float) -> State:
        with self.changed:
            self.changed.wait_for(lambda: self.state.version != after or self.stopping.is_set(), timeout=timeout)
            return self.state

    def watch(self) -> None:
        """Rebuild whenever the issue, the config, a list's subscriber file or a template changes.

        Files are watched through their folders (editors save by replacing the file); the
        templates folders recursively. A project templates folder created later is picked up.
        """
        import watchfiles  # noqa: F401 - imported here so the threads start watching at once

        from newsletter.compose.build import main_path

        config = self.config
        issue = main_path(self.issue).resolve()
        files = {self.issue.resolve(), issue, self.config_path.resolve()}
        if config is not None:  # every list's CSV source: the issue's `list:` may change while previewing
            files |= {config.subscribers.resolve(), config.templates_dir.resolve(),
                      *(s.subscribers.resolve() for s in config.lists if s.subscribers is not None)}
        flat = sorted({p.parent for p in files if p.parent.is_dir()})

        def wanted(p: str) -> bool:  # the issue's editions too, including one created while previewing
            path = Path(p).resolve()
            return path in files or (path.suffix in (".yaml", ".yml") and main_path(path) == issue)

        self._spawn(flat, False, wanted, "watch-files")
        if config is not None:
            self._spawn([config.locale_dir.resolve()], True, _not_hidden, "watch-locale")
        self._spawn([default_theme().resolve()], True, _not_hidden, "watch-theme")
        self._watch_templates()

    def _watch_templates(self) -> bool:
        folder = self.config.templates_dir.resolve() if self.config is not None else None
        if folder is None or not folder.is_dir() or folder in self._watching:
            return False
        self._spawn([folder], True, _not_hidden, "watch-templates")
        return True

    def _spawn(self, folders: list[Path], recursive: bool, wanted: Callable[[str], bool], name: str) -> None:
        folders = [f for f in folders if f.is_dir()]
        self._watching.update(folders)
        if folders:
            threading.Thread(target=self._watch, args=(folders, recursive, wanted), daemon=True, name=name).start()

    def _watch(self, folders: Iterable[Path], recursive: bool, wanted: Callable[[str], bool]) -> None:
        import watchfiles

        for changes in watchfiles.watch(*folders, recursive=recursive, stop_event=self.stopping,
                                        watch_filter=lambda _change, path: wanted(path), debounce=150, step=50,
                                        raise_interrupt=False):
            if changes:
                if self._watch_templates():
                    time.sleep(0.3)  # let the new watcher settle, then build what is already there
                self.rebuild()

    def stop(self) -> None:
        self.stopping.set()
        with self.changed:
            self.changed.notify_all()


def make_server(preview: Preview, port: int) -> ThreadingHTTPServer:
    """The HTTP server on 127.0.0.1:`port` (0 picks a free port)."""

    class Handler(_Handler):
        pass

    Handler.preview = preview
    try:
        server = _Server((HOST, port), Handler)
    except OSError as e:
        raise PreviewError(f"cannot listen on {HOST}:{port}: {e.strerror} (try --port {port + 1 if port else 0})") \
            from None
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A tab that navigates away mid-response is not an error worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def serve(issue: Path, config_path: Path, *, port: int = 8000, recipient: str | None = None,
          ready: Callable[[str], None] | None = None) -> None:
    """Build, start watching, serve until interrupted."""
    preview = Preview(issue, config_path, recipient)
    if recipient:  # a wrong --as is the user's mistake: say so before starting
        list_config = _issue_list(load_config(config_path), issue)
        if list_config is not None:
            recipient_values(list_config, recipient, "en")
    server = make_server(preview, port)
    preview.config = load_config(config_path)
    preview.watch()  # before the first build, so no save after it goes unseen
    preview.rebuild()
    url = f"http://{HOST}:{server.server_address[1]}/"
    (ready or (lambda u: print(f"preview  {u}  (Ctrl-C to stop)", flush=True)))(url)
    try:
        server.serve_forever(poll_interval=0.25)
    finally:
        preview.stop()
        server.server_close()


def _issue_list(config: Config, issue: Path) -> Config | None:
    """The Config of the list `issue` names; None while the issue cannot be read (its build says why)."""
    from newsletter.compose.build import load_with_editions

    try:
        return config.for_issue(load_with_editions(issue)[0])
    except InputError:
        return None


class _Handler(BaseHTTPRequestHandler):
    preview: Preview
    server_version = "newsletter-preview"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the terminal shows builds
        pass

    def do_GET(self) -> None:  # noqa: N802
        from urllib.parse import parse_qs

        path, _, query = self.path.partition("?")
        state = self.preview.state
        shown = state.edition(parse_qs(query).get("lang", [None])[0])
        if path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", PAGE)
        elif path == "/email.html":
            body = shown["html"] or _blank(state.errors)
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", body)
        elif path == "/email.txt":
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", shown["text"] or "\n".join(state.errors))
        elif path == "/state.json":
            self._send(HTTPStatus.OK, "application/json", json.dumps(state.public()))
        elif path == "/events":
            self._events()
        elif path == UNSUBSCRIBE_PREVIEW:
            self._send(HTTPStatus.OK, "text/html; charset=utf-8",
                       "<!doctype html><meta charset=utf-8><title>Unsubscribe</title><p style='font:16px sans-serif'>"
                       "In a sent email this is the reader's own signed one-click unsubscribe link.</p>")
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", "not found")

    def _send(self, status: HTTPStatus, kind: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _events(self) -> None:
        """Server-Sent Events: one `build` event per new version, a comment every 15 s to keep it open."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        try:
            while not self.preview.stopping.is_set():
                state = self.preview.wait(seen, timeout=15)
                if state.version != seen:
                    seen = state.version
                    self.wfile.write(f"event: build\ndata: {json.dumps(state.public())}\n\n".encode())
                else:
                    self.wfile.write(b": still here\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            return


def _not_hidden(path: str) -> bool:
    return not Path(path).name.startswith(".")


def _blank(errors: list[str]) -> str:
    import html

    lines = "".join(f"<div>{html.escape(e)}</div>" for e in errors) or "building…"
    return f"<!doctype html><meta charset=utf-8><body style='font:14px monospace;color:#b3001b'>{lines}</body>"


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Preview</title>
<style>
  body { margin: 0; font: 14px/1.4 system-ui, Helvetica, Arial, sans-serif; background: #e9ebee; color: #1f2328; }
  header { background: #fff; border-bottom: 1px solid #d0d7de; padding: 10px 16px; position: sticky; top: 0; }
  .bar { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
  .bar button { border: 1px solid #d0d7de; background: #f6f8fa; border-radius: 6px; padding: 4px 10px;
                cursor: pointer; font: inherit; }
  .bar button[aria-pressed="true"] { background: #1f2328; color: #fff; border-color: #1f2328; }
  .status { margin-left: auto; color: #57606a; }
  .inbox { margin-top: 10px; display: flex; gap: 12px; align-items: baseline; background: #f6f8fa;
           border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; overflow: hidden; }
  .from { font-weight: 600; white-space: nowrap; }
  .line { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; min-width: 0; }
  #subject { font-weight: 600; }
  #preheader { color: #57606a; }
  .to { color: #57606a; font-size: 12px; margin-top: 4px; }
  #error { display: none; margin: 12px auto; max-width: 900px; background: #fff1f0; color: #82071e;
           border: 1px solid #ffb3b8; border-radius: 6px; padding: 10px 14px; font: 13px/1.5 ui-monospace, monospace;
           white-space: pre-wrap; }
  #error.shown { display: block; }
  main { display: flex; justify-content: center; padding: 16px; }
  iframe { border: 0; background: #fff; box-shadow: 0 1px 4px rgba(0,0,0,.15); width: 800px; height: 600px; }
  body[data-mode="phone"] iframe { width: 375px; }
</style>
</head>
<body data-mode="desktop">
<header>
  <div class="bar">
    <button type="button" data-mode="desktop" aria-pressed="true">Desktop</button>
    <button type="button" data-mode="phone" aria-pressed="false">Phone</button>
    <button type="button" data-mode="text" aria-pressed="false">Text</button>
    <label id="langs" hidden>Edition <select id="lang"></select></label>
    <span class="status" id="status">connecting…</span>
  </div>
  <div class="inbox" title="as an inbox lists it">
    <span class="from" id="from"></span>
    <span class="line"><span id="subject"></span> <span id="preheader"></span></span>
  </div>
  <div class="to">to <span id="to"></span></div>
</header>
<div id="error" role="alert"></div>
<main><iframe id="frame" title="the email" src="about:blank"></iframe></main>
<script>
(function () {
  var version = null, mode = (location.hash.slice(1) || "desktop"), lang = "", last = null;
  var frame = document.getElementById("frame");
  function $(id) { return document.getElementById(id); }
  function load() {
    frame.src = (mode === "text" ? "email.txt" : "email.html") + "?v=" + version +
      (lang ? "&lang=" + encodeURIComponent(lang) : "");
  }
  $("lang").addEventListener("change", function () { lang = $("lang").value; if (last) { apply(last, true); } });
  function setMode(m) {
    mode = m; location.hash = m; document.body.dataset.mode = m;
    document.querySelectorAll("button[data-mode]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.mode === m));
    });
    load();
  }
  frame.addEventListener("load", function () {
    try { frame.style.height = Math.max(600, frame.contentDocument.documentElement.scrollHeight + 20) + "px"; }
    catch (e) {}
  });
  function apply(s, switched) {
    last = s;
    var langs = Object.keys(s.editions || {}), select = $("lang");
    var same = select.options.length === langs.length &&
      langs.every(function (l, i) { return select.options[i].value === l; });
    if (!same) {
      select.innerHTML = "";
      langs.forEach(function (l) {
        var o = document.createElement("option"); o.value = o.textContent = l; select.appendChild(o);
      });
      if (langs.indexOf(lang) < 0) { lang = langs.length ? langs[0] : ""; }
      select.value = lang;
    }
    $("langs").hidden = langs.length < 2;
    var shown = (lang && s.editions && s.editions[lang]) || s;
    $("from").textContent = s.from_name;
    $("from").title = s.from_address;
    $("subject").textContent = shown.subject;
    $("preheader").textContent = shown.preheader ? "\\u2014 " + shown.preheader : "";
    $("to").textContent = s.to;
    var err = $("error");
    if (s.errors.length) {
      err.textContent = "The last build failed; showing the last good one.\\n\\n" + s.errors.join("\\n");
      err.className = "shown";
      $("status").textContent = "build failed";
    } else {
      err.textContent = ""; err.className = "";
      $("status").textContent = "built, " + s.size_kb + " KB of " + s.clip_kb + " KB";
    }
    if (s.version !== version || switched) { version = s.version; load(); }
  }
  function poll() {
    fetch("state.json", {cache: "no-store"}).then(function (r) { return r.json(); }).then(apply)
      .catch(function () { $("status").textContent = "preview server stopped?"; });
  }
  document.querySelectorAll("button[data-mode]").forEach(function (b) {
    b.addEventListener("click", function () { setMode(b.dataset.mode); });
  });
  setMode(mode);
  var timer = null;
  if (window.EventSource) {
    var events = new EventSource("events");
    events.addEventListener("build", function (e) { apply(JSON.parse(e.data)); });
    events.onerror = function () {
      if (events.readyState === EventSource.CLOSED && !timer) { timer = setInterval(poll, 1000); }
    };
  } else {
    timer = setInterval(poll, 1000);
  }
  poll();
})();
</script>
</body>
</html>
"""

