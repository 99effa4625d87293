"""Reading a pipeline file: YAML into plain data, with the position of every key and value.

Validation errors must name the line of the offending value, so the file is composed into
PyYAML's node tree (every node keeps its start mark) and turned into dicts, lists and
scalars here, recording where each key path was written. On the way:

* scalars follow the YAML 1.2 core schema: only ``true``/``false`` are booleans (``no``,
  ``on``, ``off`` stay strings, so a country code or a mode keeps its spelling), no
  base-60 numbers, no dates (they stay strings for the models to parse);
* a key written twice in one mapping is an error naming both lines (YAML 1.1 parsers keep
  the last one silently); ``<<`` merge keys work as usual, explicit keys overriding merged;
* ``${VAR}`` and ``${VAR:-default}`` in string values are filled from the environment
  (the default applies when VAR is unset or empty); ``$${`` writes a literal ``${``.

Two limits keep a hostile file from hanging or crashing the loader: a document nested
deeper than :data:`MAX_DEPTH` levels, or one whose aliases expand to more than
:data:`MAX_VALUES` values ("billion laughs": each anchor repeating the one before), is
refused with a :class:`ConfigError` instead of being built.

Syntax errors stop loading (nothing after them can be trusted); duplicate keys and
unset variables are collected as :class:`Problem` s so that validation can go on and report
everything in one go.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hub.errors import ConfigError

__all__ = [
    "KeyPath",
    "Position",
    "Problem",
    "YamlDocument",
    "format_key_path",
    "interpolate",
    "load_yaml",
]

KeyPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
# Far beyond any real pipeline (a few hundred values, a dozen levels), far below what takes
# seconds to build or exhausts Python's recursion limit.
MAX_DEPTH = 64
MAX_VALUES = 100_000


@dataclass(frozen=True, order=True)
class Position:
    """1-based line and column in the file."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark) -> Position:
        return cls(mark.line + 1, mark.column + 1)


START = Position(1, 1)


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_key_path(path: KeyPath) -> str:
    """``("sources", 0, "interval")`` -> ``sources[0].interval``; odd keys are quoted:
    ``topics["shop.public.orders"].partitions``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += '["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]'
    return out or "(top level)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, at a position, under a key path."""

    file: str
    position: Position
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.position.line}:{self.position.column}"
        return f"{where}: {format_key_path(self.path)}: {self.message}"


@dataclass
class YamlDocument:
    """A loaded file: ``data`` plus where each key path's key and value were written."""

    file: str
    data: Any
    values: dict[KeyPath, Position] = field(default_factory=dict)
    keys: dict[KeyPath, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def position(self, path: KeyPath, *, key: bool = False) -> Position:
        """Where ``path``'s value (or key) starts; the nearest written ancestor if missing."""
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, START)

    def problem(self, path: KeyPath, message: str, *, key: bool = False) -> Problem:
        return Problem(self.file, self.position(path, key=key), path, message)


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader resolving plain scalars by the YAML 1.2 core schema (see module doc)."""


_REPLACED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp")}
_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# A leading zero ("0755") matches neither int nor float and stays a string: YAML 1.1 read it
# as octal, 1.2 as decimal; a string lets the model decide (a file mode, a zip code, a number).
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0o[0-7_]+)$"),
    list("-+0123456789"),
)
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*\.[0-9_]*)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<close>\}?)")
_REFERENCE_BODY = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.S)


def interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[tuple[int, str]]]:
    """Fill ``${VAR}`` / ``${VAR:-default}`` in ``text`` from ``env``; ``$${`` is a literal ``${``.

    Returns the new text and a list of ``(offset in text, message)`` for references that
    cannot be filled (unset without default, malformed); those expand to nothing.
    """
    errors: list[tuple[int, str]] = []

    def fill(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        if not m.group("close"):
            errors.append((m.start(), "'${' is never closed by '}'; write $${ for a literal ${"))
            return m.group(0)
        body = _REFERENCE_BODY.match(m.group("body"))
        if body is None:
            errors.append((
                m.start(),
                f"{m.group(0)!r} is not a variable reference: write ${{NAME}} or "
                "${NAME:-default} (NAME: letters, digits, _), or $${ for a literal ${",
            ))
            return ""
        name, default = body.group("name"), body.group("default")
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            errors.append((
                m.start(),
                f"environment variable {name} is not set (referenced as ${{{name}}}); "
                f"export it, or give a default: ${{{name}:-value}}",
            ))
            return ""
        return value

    return _REFERENCE.sub(fill, text), errors


def load_yaml(file: Path, env: Mapping[str, str]) -> YamlDocument:
    """Read ``file`` into a :class:`YamlDocument`; ``data`` is None for an empty file.

    Raises :class:`ConfigError` when the file cannot be read or is not valid YAML.
    """
    name = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{name}: not UTF-8 text (byte {e.start} is {e.object[e.start:e.start + 1]!r}); "
            "save the file as UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read the pipeline file: {e.strerror}") from None
    try:
        # The reader rejects control characters already in the constructor.
        loader = _CoreSchemaLoader(text)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise ConfigError(
            f"{name}:{line}:{column}: invalid YAML: the control character "
            f"U+{e.character:04X} is not allowed in YAML text; remove it (or write it as "
            'an escape, "\\x1f", inside a double-quoted string)'
        ) from None
    try:
        root = loader.get_single_node()
    except RecursionError:
        raise ConfigError(
            f"{name}: invalid YAML: nested too deeply to read (PyYAML composes recursively); "
            f"a pipeline file needs no more than {MAX_DEPTH} levels"
        ) from None
    except yaml.MarkedYAMLError as e:
        raise ConfigError(_syntax_message(name, e)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}: invalid YAML: {e}") from None
    finally:
        loader.dispose()
    doc = YamlDocument(name, None)
    if root is not None:
        doc.data = _Builder(loader, doc, env).build(root, ())
    return doc


class _Builder:
    """Turns a node tree into plain data, filling ``doc``'s positions and problems."""

    def __init__(self, loader: yaml.SafeLoader, doc: YamlDocument, env: Mapping[str, str]):
        self.loader = loader
        self.doc = doc
        self.env = env
        self.active: set[int] = set()  # nodes being built: an alias back to one is a cycle
        self.built = 0

    def build(self, node: Node, path: KeyPath) -> Any:
        self.doc.values[path] = Position.of(node.start_mark)
        self.built += 1
        if self.built > MAX_VALUES:
            raise ConfigError(str(self.doc.problem(
                path,
                f"the file expands to more than {MAX_VALUES} values (aliases repeating "
                "aliases?); write the pipeline out without nested anchors",
            )))
        if len(path) > MAX_DEPTH:
            self.doc.problems.append(self.doc.problem(
                path, f"nested deeper than {MAX_DEPTH} levels; no pipeline setting is"
            ))
            return None
        if id(node) in self.active:
            self.doc.problems.append(self.doc.problem(path, "an alias refers to its own parent"))
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
            return self._scalar(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        try:
            self.loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as e:
            self.doc.problems.append(self.doc.problem(path, f"bad merge key: {e.problem}"))
            return {}
        merged = len(node.value) - own
        out: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        for i, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, ScalarNode):
                self.doc.problems.append(Problem(
                    self.doc.file, Position.of(key_node.start_mark), path,
                    "a key must be a plain name, not a list or a mapping",
                ))
                continue
            key = key_node.value
            key_path = (*path, key)
            at = Position.of(key_node.start_mark)
            if i >= merged:
                if key in first_seen:
                    self.doc.problems.append(Problem(
                        self.doc.file, at, key_path,
                        f"duplicate key {key!r}: first written at line {first_seen[key].line}, "
                        f"again at line {at.line}; keep one",
                    ))
                    continue
                first_seen[key] = at
            self.doc.keys[key_path] = at
            out[key] = self.build(value_node, key_path)
        return out

    def _scalar(self, node: Node, path: KeyPath) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as e:
            self.doc.problems.append(self.doc.problem(path, f"{e.problem} (tag {node.tag})"))
            return None
        if not isinstance(value, str) or node.tag != _STR_TAG:
            return value
        filled, errors = interpolate(value, self.env)
        for offset, message in errors:
            self.doc.problems.append(
                Problem(self.doc.file, self._offset_position(node, value, offset), path, message)
            )
        return filled

    @staticmethod
    def _offset_position(node: Node, value: str, offset: int) -> Position:
        """Point at the ``${`` itself when the scalar is written on one line as it reads."""
        start, end = node.start_mark, node.end_mark
        quoted = 1 if isinstance(node, ScalarNode) and node.style in ("'", '"') else 0
        if start.line == end.line and end.column - start.column == len(value) + 2 * quoted:
            return Position(start.line + 1, start.column + 1 + quoted + offset)
        return Position.of(start)


def _syntax_message(file: str, e: yaml.MarkedYAMLError) -> str:
    """PyYAML's complaint, in words that say what to change."""
    problem, context = e.problem or "", e.context or ""
    # An unclosed quote is found at the end of the file; where it opens is what to fix.
    unclosed = problem == "found unexpected end of stream" and "quoted scalar" in context
    mark = (e.context_mark if unclosed else e.problem_mark) or e.context_mark
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
    since = f"line {e.context_mark.line + 1}" if e.context_mark else ""
    if "'\\t'" in problem or "tab character" in problem:
        plain = "a tab character: YAML indents and separates with spaces only; replace it"
    elif problem == "mapping values are not allowed here":
        plain = (
            "unexpected ':' - quote a value that contains ': ', or check that the line "
            "above has its ':' and that this line is indented like its siblings"
        )
    elif problem.startswith("could not find expected ':'"):
        plain = "expected 'key: value' here: a key without ':', or a line indented wrongly"
    elif unclosed:
        plain = "this quoted string is never closed: add the closing quote"
    elif problem.startswith("expected <block end>"):
        plain = (
            f"indentation does not match the block that starts at {since}: indent keys of "
            "one mapping (and items of one list) by the same number of spaces"
        )
    elif problem.startswith("found undefined alias"):
        plain = f"{problem}: define the anchor (&name) before using the alias (*name)"
    elif context == "expected a single document in the stream":
        plain = "a second YAML document ('---'): a pipeline file holds exactly one"
    else:
        plain = problem + (f" ({context}, from {since})" if context and since else "")
    return f"{where}: invalid YAML: {plain}"
