"""Several lists per project, subscribers in the store, and who a send goes to: real processes,
real files, the outbox backend."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

from newsletter.config import load_config
from newsletter.store import open_store
from tests.conftest import REPO, run, single_list
from tests.tomledit import DELETE, edit_toml, line_of, read_toml

CAMPAIGN = "issues/2011-11-28-free-ales-bialiatski.yaml"
DIGEST = "issues/2013-12-10-solidarity-with-ales-bialiatski.yaml"
SECRET = {"NEWSLETTER_SECRET": "lists-test-secret-0123456789abcdef"}


def outbox(project: Path, slug: str) -> dict[str, object]:
    """address -> parsed message, for every .eml the outbox backend wrote for `slug`."""
    out = {}
    for f in sorted((project / "outbox" / slug).glob("*.eml")):
        m = message_from_bytes(f.read_bytes(), policy=policy.default)
        out[str(m["To"]).split("<")[-1].rstrip(">").lower()] = m
    return out


def test_each_list_sends_with_its_own_identity(project: Path) -> None:
    for issue in (CAMPAIGN, DIGEST):
        r = run(["send", issue, "--yes"], cwd=project)
        assert r.returncode == 0, r.stderr
    fidh = outbox(project, "2011-11-28-free-ales-bialiatski")["ada@example.org"]
    viasna = outbox(project, "2013-12-10-solidarity-with-ales-bialiatski")["ada@example.org"]
    assert str(fidh["From"]) == "FIDH <newsletter@example.org>"
    assert str(viasna["From"]) == "Viasna <digest@spring96.example.org>"
    assert str(fidh["List-Id"]) == "FIDH campaign news <campaigns.news.example.org>"
    assert str(viasna["List-Id"]) == "Viasna digest <digest.spring96.example.org>"
    assert str(viasna["Reply-To"]) == "viasna@spring96.example.org"
    assert "unsubscribe@spring96.example.org" in str(viasna["List-Unsubscribe"])
    text = viasna.get_body(("plain",)).get_content()
    assert "Viasna Human Rights Centre, Minsk, Belarus" in text and "Passage de la Main" not in text
    assert "You receive the Viasna digest because you asked for it." in text
    assert "Passage de la Main" in fidh.get_body(("plain",)).get_content()


def test_an_issue_must_name_its_list_once_there_are_two(project: Path) -> None:
    src = (project / DIGEST).read_text()
    (project / "issues" / "2013-12-10-x.yaml").write_text(re.sub(r"^list: .*\n", "", src, flags=re.M))
    (project / "issues" / "2013-12-10-y.yaml").write_text(src.replace("list: digest", "list: digets"))
    line = next(i for i, t in enumerate(src.splitlines(), 1) if t.startswith("list:"))
    r = run(["build", "issues/2013-12-10-x.yaml", "issues/2013-12-10-y.yaml"], cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [
        "issues/2013-12-10-x.yaml:1: list: missing (required: this project has 2 lists: campaigns, digest)",
        f"issues/2013-12-10-y.yaml:{line}: list: unknown list 'digets'; did you mean 'digest'? "
        "(lists: campaigns, digest)"]
    assert not (project / "build").exists()


def test_a_single_list_config_keeps_working_unchanged(project: Path) -> None:
    single_list(project)
    src = (project / DIGEST).read_text()
    (project / DIGEST).write_text(re.sub(r"^list: .*\n", "", src, flags=re.M))  # as before lists existed
    r = run(["send", DIGEST, "--yes"], cwd=project)
    assert r.returncode == 0, r.stderr
    m = outbox(project, "2013-12-10-solidarity-with-ales-bialiatski")["ada@example.org"]
    assert str(m["List-Id"]) == "FIDH campaign news <campaigns.news.example.org>"
    assert str(m["From"]) == "FIDH <newsletter@example.org>"
    assert load_config(project / "newsletter.toml").list_key == "default"
    r = run(["subscribers", "import", "subscribers.example.csv"], cwd=project)  # --list optional with one list
    assert r.returncode == 0 and "-> default: 4 rows; added 4" in r.stdout, r.stderr


def test_bad_list_tables_are_one_line_each(project: Path) -> None:
    toml = project / "newsletter.toml"
    good = toml.read_text()
    digest = read_toml(toml)["lists"]["digest"]
    edit_toml(toml, {"lists.digest.id": "campaigns.news.example.org"})
    line = line_of(toml, "id = ", after="[lists.digest]")
    r = run(["build", CAMPAIGN], cwd=project)
    assert (r.returncode, r.stderr.splitlines()) == (1, [
        f"newsletter.toml:{line}: lists.digest.id: List-Id 'campaigns.news.example.org' is already "
        "lists.campaigns's"])
    toml.write_text(good)
    edit_toml(toml, {"lists.digest": DELETE, "lists.Digest!": digest})
    header = line_of(toml, '[lists."Digest!"]')
    r = run(["build", CAMPAIGN], cwd=project)
    assert (r.returncode, r.stderr.splitlines()) == (1, [
        f"newsletter.toml:{header}: lists.Digest!: a list id is lower-case letters, digits, '-' and '_' "
        "(at most 64)"])
    toml.write_text(good)
    edit_toml(toml, {"list": {"name": "x", "id": "x.example.org"}})
    r = run(["build", CAMPAIGN], cwd=project)
    assert (r.returncode, r.stderr.splitlines()) == (1, [
        f"newsletter.toml:{line_of(toml, '[list]')}: list: a project has either one [list] table or [lists.<id>] "
        "tables, not both: move [list] into [lists.<id>]"])
    assert "Traceback" not in r.stderr and not (project / "build").exists()


def test_import_export_count_and_a_second_import_changes_nothing(project: Path) -> None:
    (project / "crm.csv").write_text("\ufeffemail;name;language;city\nnew@example.org;New One;fr;Minsk\n"
                                     "not-an-address;X;en;\nNEW@example.org;again;en;\n"
                                     "ada@example.org;Ada Lovelace;en;London\n", encoding="utf-8")
    r = run(["subscribers", "import", "crm.csv"], cwd=project)
    assert r.returncode == 1 and "name one: campaigns, digest" in r.stderr
    r = run(["subscribers", "import", "crm.csv", "--list", "digest"], cwd=project)
    assert r.returncode == 1, "an invalid row makes the exit status 1"
    assert "crm.csv:3: email: not-an-address:" in r.stderr
    assert "crm.csv:4: email: NEW@example.org: duplicate" in r.stderr
    assert "added 2, updated 0, unchanged 0" in r.stdout
    with open_store(project / ".newsletter" / "state.db") as s:
        before = {t: list(s.dump(t)) for t in ("subscribers", "memberships", "consents")}
    r = run(["subscribers", "import", "crm.csv", "--list", "digest"], cwd=project)
    assert "added 0, updated 0, unchanged 2" in r.stdout
    with open_store(project / ".newsletter" / "state.db") as s:
        assert {t: list(s.dump(t)) for t in ("subscribers", "memberships", "consents")} == before
    r = run(["subscribers", "count"], cwd=project)
    assert r.returncode == 0
    assert [ln.split()[:3] for ln in r.stdout.splitlines()] == [["campaigns", "confirmed", "0"],
                                                                ["digest", "confirmed", "2"]]
    r = run(["subscribers", "export", "--list", "digest", "out/digest.csv"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert (project / "out" / "digest.csv").read_text().splitlines() == [
        "email,name,language,city", "ada@example.org,Ada Lovelace,en,London", "new@example.org,New One,fr,Minsk"]
    r = run(["subscribers", "import", "out/digest.csv", "--list", "digest"], cwd=project)
    assert r.returncode == 0 and "added 0, updated 0, unchanged 2" in r.stdout  # the export imports back as is
    r = run(["subscribers", "list", "--list", "digest"], cwd=project)
    assert r.stdout.splitlines() == ["ada@example.org\tconfirmed\ten\tAda Lovelace",
                                     "new@example.org\tconfirmed\tfr\tNew One"]


def test_send_goes_to_the_file_and_the_confirmed_members_and_never_to_who_left(project: Path) -> None:
    # the digest's CSV source is the example file (ada, marie.curie, ales, no-name)
    with open_store(project / ".newsletter" / "state.db") as s:
        from newsletter.store import ImportRow

        s.import_members("digest", [ImportRow("reader@example.org", "Store Reader", "fr", {"city": "Lyon"}),
                                    ImportRow("ada@example.org", "Ada (store)", "en", {})], source="test")
        s.set_membership("digest", "ales@example.org", "unsubscribed", source="page")  # in the file: stays out
        s.set_membership("campaigns", "marie.curie@example.org", "unsubscribed", source="page")  # other list
        s.signup("digest", "pending@example.org", "", "en", form_url="f", wording="v1", ip_hash="",
                 forget_hashes=[], resend_after="2000")
        s.suppress("no-name@example.org", "bounced", source="webhook")
    r = run(["send", DIGEST, "--dry-run"], cwd=project)
    assert "subscribers    subscribers.example.csv + store (digest): 5 rows" in r.stdout, r.stdout
    r = run(["send", DIGEST, "--yes"], cwd=project)
    assert r.returncode == 0, r.stderr
    got = outbox(project, "2013-12-10-solidarity-with-ales-bialiatski")
    assert sorted(got) == ["ada@example.org", "marie.curie@example.org", "reader@example.org"]
    assert "Dear Ada Lovelace" in got["ada@example.org"].get_body(("plain",)).get_content() or \
        "Ada (store)" not in str(got["ada@example.org"]["To"])  # the file's copy wins for a person in both
    assert "Store Reader" in str(got["reader@example.org"]["To"])
    assert "sent 3" in r.stdout and "suppressed 2" in r.stdout, r.stdout
    # a rerun sends nobody twice; a new confirmed member gets the issue on the next run
    with open_store(project / ".newsletter" / "state.db") as s:
        from newsletter.store import ImportRow

        s.import_members("digest", [ImportRow("late@example.org", "", "en", {})], source="test")
    r = run(["send", DIGEST, "--yes"], cwd=project)
    assert r.returncode == 0 and sorted(outbox(project, "2013-12-10-solidarity-with-ales-bialiatski")) == [
        "ada@example.org", "late@example.org", "marie.curie@example.org", "reader@example.org"]
    assert "sent 1" in r.stdout


def test_subscribers_one_off_file_leaves_the_store_out_but_not_the_unsubscribes(project: Path) -> None:
    (project / "oneoff.csv").write_text("email\nales@example.org\nbob@example.org\n")
    with open_store(project / ".newsletter" / "state.db") as s:
        from newsletter.store import ImportRow

        s.import_members("digest", [ImportRow("reader@example.org", "", "en", {})], source="test")
        s.set_membership("digest", "ales@example.org", "unsubscribed", source="page")
    r = run(["send", DIGEST, "--yes", "--subscribers", "oneoff.csv"], cwd=project)
    assert r.returncode == 0, r.stderr
    assert sorted(outbox(project, "2013-12-10-solidarity-with-ales-bialiatski")) == ["bob@example.org"]


def test_the_quickstart_works_on_a_fresh_copy(tmp_path: Path) -> None:
    import shutil

    for name in ("newsletter.toml", "subscribers.example.csv"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "issues", tmp_path / "issues")
    r = run(["send", CAMPAIGN, "--dry-run"], cwd=tmp_path)
    assert r.returncode == 0 and "to send           4" in r.stdout, r.stdout + r.stderr
    assert not (tmp_path / ".newsletter").exists(), "a dry run on a fresh clone creates no state"


def test_show_everything_about_a_person_then_forget_them(project: Path) -> None:
    import json

    (project / "crm.csv").write_text("email,name,city\nreader@example.org,Rea Der,Minsk\n")
    assert run(["subscribers", "import", "crm.csv", "--list", "digest"], cwd=project).returncode == 0
    assert run(["send", DIGEST, "--yes"], cwd=project).returncode == 0
    r = run(["subscribers", "show", "Reader@Example.org", "--json"], cwd=project)
    data = json.loads(r.stdout)
    assert data["person"]["name"] == "Rea Der" and data["person"]["fields"] == {"city": "Minsk"}
    assert [(m["list"], m["status"]) for m in data["memberships"]] == [("digest", "confirmed")]
    assert data["consents"][0]["method"] == "import" and data["consents"][0]["form_url"] == "crm.csv"
    assert [(s["issue"], s["status"]) for s in data["sends"]] == [("2013-12-10-solidarity-with-ales-bialiatski",
                                                                   "sent")]
    text = run(["subscribers", "show", "reader@example.org"], cwd=project).stdout
    assert "list         digest: confirmed" in text and "sent         2013-12-10" in text

    r = run(["subscribers", "forget", "reader@example.org"], cwd=project, env=SECRET)
    assert r.returncode == 1 and "add --yes" in r.stderr
    r = run(["subscribers", "forget", "reader@example.org", "--yes"], cwd=project, env={"NEWSLETTER_SECRET": ""})
    assert r.returncode == 1 and "NEWSLETTER_SECRET" in r.stderr and "Traceback" not in r.stderr
    r = run(["subscribers", "forget", "reader@example.org", "--yes"], cwd=project, env=SECRET)
    assert r.returncode == 0, r.stderr
    r = run(["subscribers", "show", "reader@example.org"], cwd=project)
    assert "nothing stored about this address" in r.stdout
    with open_store(project / ".newsletter" / "state.db") as s:
        assert "reader" not in repr([list(s.dump(t)) for t in ("subscribers", "memberships", "consents", "ledger",
                                                                "suppressions", "actions")])
        assert s.actions()[-1][1] == "forget"
    # no import brings them back without a new confirmation (and without the key, it refuses to guess)
    r = run(["subscribers", "import", "crm.csv", "--list", "digest"], cwd=project, env={"NEWSLETTER_SECRET": ""})
    assert r.returncode == 1 and "forgotten" in r.stderr
    r = run(["subscribers", "import", "crm.csv", "--list", "digest"], cwd=project, env=SECRET)
    assert r.returncode == 0 and "added 0" in r.stdout and "1 asked to be forgotten" in r.stdout


def test_a_lists_default_language_is_any_language_tag(project: Path) -> None:
    """`[lists.<id>] default_language` takes what the top level takes (any BCP 47 tag, normalised),
    not only the languages with a built-in catalogue; a malformed one is one line naming it."""
    toml = project / "newsletter.toml"
    good = toml.read_text()
    edit_toml(toml, {"lists.digest.default_language": "pt-br"})
    issue = project / DIGEST
    issue.write_text(issue.read_text().replace("\nlanguage: en\n", "\n"))  # the list's language decides
    r = run(["build", DIGEST], cwd=project)
    assert r.returncode == 0, r.stderr
    assert '<html lang="pt-BR"' in (project / "build" / issue.stem / "email.html").read_text()
    toml.write_text(good)
    edit_toml(toml, {"lists.digest.default_language": "portuguese!"})
    line = line_of(toml, "default_language = ", after="[lists.digest]")
    r = run(["build", DIGEST], cwd=project)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [f"newsletter.toml:{line}: lists.digest.default_language: 'portuguese!' is not a "
                                     "language tag (BCP 47, e.g. en, fr, pt-BR, sr-Latn)"], r.stderr
