"""YAML loading that remembers where every value came from.

PyYAML's ordinary loaders throw line numbers away; error messages naming `FILE:LINE`
need them. We compose the node tree and build plain dicts/lists that carry the line of
each key and item, and reject what ordinary loaders accept silently (duplicate keys,
alias bombs, huge files).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from newsletter.errors import InputError, Problem

MAX_BYTES = 2 * 1024 * 1024  # an issue is text; two megabytes is already absurd
MAX_NODES = 200_000  # bounds alias expansion ("billion laughs")


class Map(dict):
    """A mapping that knows its own line and the line of each key."""

    line: int
    lines: dict[str, int]


class Seq(list):
    """A sequence that knows its own line and the line of each item."""

    line: int
    lines: list[int]


def line_of(container: Any, key: Any = None) -> int | None:
    """Best line for `container[key]` (or the container itself)."""
    if key is not None:
        if isinstance(container, Map) and key in container.lines:
            return container.lines[key]
        if isinstance(container, Seq) and isinstance(key, int) and 0 <= key < len(container.lines):
            return container.lines[key]
    return getattr(container, "line", None)


def load_yaml(path: Path, *, display: str | None = None) -> Any:
    """Read a YAML file into Map/Seq/scalars, raising InputError with FILE:LINE on any problem."""
    value, problems = load_yaml_lenient(path, display=display)
    if problems:
        raise InputError(problems)
    return value


def load_yaml_lenient(path: Path, *, display: str | None = None) -> tuple[Any, list[Problem]]:
    """Like `load_yaml`, but problems inside a well-formed file (duplicate keys, bad scalars)
    are returned with the data instead of raised, so validation can carry on and report
    everything in one run. Unreadable or malformed files still raise InputError."""
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError([Problem(name, None, "", f"file is {size:,} bytes; the limit is {MAX_BYTES:,}")])
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError([Problem(name, None, "", "file not found")]) from None
    except IsADirectoryError:
        raise InputError([Problem(name, None, "", "is a directory, not a file")]) from None
    except OSError as e:
        raise InputError([Problem(name, None, "", f"cannot read: {e.strerror}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError([Problem(name, line, "", "not valid UTF-8 text")]) from None
    return parse_yaml_lenient(text, name)


def parse_yaml(text: str, name: str) -> Any:
    """YAML text (from file `name`) into Map/Seq/scalars; InputError on any problem."""
    value, problems = parse_yaml_lenient(text, name)
    if problems:
        raise InputError(problems)
    return value


def parse_yaml_lenient(text: str, name: str) -> tuple[Any, list[Problem]]:
    """Like parse_yaml, returning the problems of a well-formed document instead of raising them."""
    try:
        loader = yaml.SafeLoader(text)  # its Reader rejects control characters such as NUL here
        node = loader.get_single_node()
    except RecursionError:
        raise InputError([Problem(name, None, "", "malformed YAML: nested too deeply")]) from None
    except yaml.MarkedYAMLError as e:
        line, msg = plain_yaml_error(text, e)
        raise InputError([Problem(name, line, "", f"malformed YAML: {msg}")]) from None
    except yaml.YAMLError as e:
        raise InputError([Problem(name, None, "", f"malformed YAML: {e}")]) from None
    try:
        if node is None:
            return None, []
        problems: list[Problem] = []
        budget = [MAX_NODES]
        try:
            value = _convert(loader, node, name, problems, budget, "")
        except RecursionError:  # `a: &a [*a]` refers to itself; or nesting deeper than Python's stack
            raise InputError([Problem(name, None, "", "malformed YAML: nested too deeply "
                                                      "(or an alias that contains itself)")]) from None
        return value, problems
    finally:
        loader.dispose()


def _source_of(node: yaml.Node) -> str:
    """The text a node was read from (marks of str input keep the whole buffer)."""
    start, end = node.start_mark, node.end_mark
    return start.buffer[start.index:end.index] if start.buffer is not None else ""


def plain_yaml_error(text: str, e: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """PyYAML's error as (line, advice in plain words), at the line where the mistake is.

    PyYAML names tokens and parser states ("found character '\\t' that cannot start any
    token") and often points where it gave up rather than where the mistake is: an unclosed
    quote is reported at the end of the file, or where the next quote happens to be."""
    problem, context = (e.problem or "").strip(), (e.context or "").strip()
    at_problem = e.problem_mark.line + 1 if e.problem_mark else None
    at_context = e.context_mark.line + 1 if e.context_mark else at_problem
    if _unquoted_placeholder(text, e):
        return at_problem, 'a value starting with {{ must be in quotes: "{{ name }}, ..."'
    if problem.startswith("found character '\\t'"):
        return at_problem, "tabs are not allowed for indentation; use spaces"
    if context == "while scanning a quoted scalar":  # the quote never closes before the end of the file
        quote = _char_at(e.context_mark) or '"'
        return at_context, f"unclosed quote: the {quote} that opens on this line is never closed"
    if context in ("while scanning an anchor", "while scanning an alias"):
        mark = _char_at(e.context_mark) or "&"
        return at_context, f"a value cannot start with {mark}: put the whole value in quotes"
    if problem.startswith("found unknown escape character"):
        return at_problem, ("a backslash inside double quotes starts an escape: write \\\\ for a backslash, "
                            "or use single quotes")
    if context == "while scanning a block scalar":
        return at_problem, ("after | or > the text starts on the next line, indented; "
                            "to start a value with | or >, put it in quotes")
    found = re.match(r"found character '(.)' that cannot start any token", problem)
    if found:
        return at_problem, f"a value cannot start with {found.group(1)}: put the whole value in quotes"
    if problem == "could not find expected ':'":
        return at_context, "expected `key: value` here: is the ':' after the key missing?"
    if problem == "mapping values are not allowed here":
        return at_problem, ("unexpected ':' here: put a value that contains ': ' in quotes, "
                            "or indent this line like the ones above it")
    flow = re.match(r"expected ',' or '([\]}])'", problem)
    if flow:
        opening = "[" if flow.group(1) == "]" else "{"
        return at_context, f"the {opening} that opens on this line is never closed with {flow.group(1)}"
    if problem.startswith("expected <block end>") or problem.startswith("did not find expected"):
        before = _token_before(text, e.problem_mark)
        if isinstance(before, yaml.ScalarToken) and before.style in ('"', "'"):
            start = before.start_mark.line + 1
            if start != before.end_mark.line + 1:
                return start, (f"unclosed quote: the {before.style} that opens on this line runs on to line "
                               f"{before.end_mark.line + 1}; close it on its own line")
            return at_problem, "text after the closing quote: put the whole value in quotes"
        return at_problem, "this line's indentation does not match the lines above it"
    if problem.startswith("found undefined alias"):
        return at_problem, "a value starting with * must be in quotes (* refers to an &anchor in YAML)"
    if context == "expected a single document in the stream":
        return at_problem, "one issue per file: remove this '---' line and what follows, or move it to its own file"
    return at_problem or at_context, problem or context or "not valid YAML"


def _char_at(mark: yaml.Mark | None) -> str:
    if mark is None or mark.buffer is None:
        return ""
    return str(mark.buffer[mark.index])


def _token_before(text: str, mark: yaml.Mark | None) -> yaml.Token | None:
    """The last token YAML read before `mark` (the scanner gets further than the parser)."""
    if mark is None:
        return None
    last = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= mark.index:
                break
            last = token
    except yaml.YAMLError:
        pass
    return last


def _unquoted_placeholder(text: str, e: yaml.MarkedYAMLError) -> bool:
    """Did YAML read `key: {{ name }}, ...` as a mapping? The commonest way to break an issue."""
    lines = text.splitlines()
    marks = [m for m in (e.context_mark, e.problem_mark) if m is not None]
    return any(m.line < len(lines) and re.search(r":\s+\{\{", lines[m.line]) for m in marks)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _convert(loader: yaml.SafeLoader, node: yaml.Node, name: str, problems: list[Problem],
             budget: list[int], path: str) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        if budget[0] == -1:
            problems.append(Problem(name, node.start_mark.line + 1, path,
                                    f"too many values (over {MAX_NODES:,}; aliases expanding?)"))
        return None
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        source = _source_of(node)
        if node.flow_style and source.startswith("{{"):  # `subject: {{ name }}` is a mapping to YAML
            problems.append(Problem(name, line, path, f"a value starting with {{{{ must be in quotes: \"{source}\""))
            return source
        try:
            loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as e:
            problems.append(Problem(name, line, path, f"bad merge key: {e.problem}"))
            return None
        out = Map()
        out.line = line
        out.lines = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(name, key_node.start_mark.line + 1, path, "keys must be plain names"))
                continue
            key = str(key_node.value)
            if key in out.lines:
                problems.append(Problem(name, key_node.start_mark.line + 1, _join(path, key),
                                        f"duplicate key (first set on line {out.lines[key]})"))
                continue
            out.lines[key] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, name, problems, budget, _join(path, key))
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = Seq()
        seq.line = line
        seq.lines = []
        for i, item in enumerate(node.value):
            seq.lines.append(item.start_mark.line + 1)
            seq.append(_convert(loader, item, name, problems, budget, _join(path, i)))
        return seq
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError):
        # A scalar that looks like a date or number but is not one (2011-13-40): keep the
        # text, and let the schema say what the field wants, naming the field.
        return node.value
