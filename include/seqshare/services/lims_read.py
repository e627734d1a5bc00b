"""Reading a LIMS export (JSON or YAML): bounded, strict about keys, every problem named as bad input.

What is read is bounded before it can cost memory or stack: the file's size (MAX_BYTES), how deeply it nests
(MAX_DEPTH), and the errors collected (validation stops at a list's first bad record). A key given twice
in one mapping is refused, never resolved to the last (`ttl_days: 7` then `ttl_days: 3650` stored 3650).
"""

from __future__ import annotations

import json
import re
import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from seqshare.errors import InvalidInput, quote
from seqshare.lims_schema import LimsExport

MAX_BYTES = 32 * 1024 * 1024  # a whole facility's export is a few megabytes
MAX_DEPTH = 20  # the schema needs 7: export > runs > [i] > lanes > [j] > pools > [k] (a pool id)
KEYS = {"groups": "name", "users": "username", "projects": "name", "pools": "id", "runs": "run_id"}
_MERGE = "tag:yaml.org,2002:merge"


class _Refused(Exception):
    """A problem at a line of the file (0: no line known)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (with both lines) and nesting deeper than MAX_DEPTH.

    Both checks run while composing, where every node still has its line; the composer is recursive, so
    the depth check is what keeps `[[[[...` 10,000 deep from exhausting the stack.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise _Refused(line, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE:
                continue  # a merge (`<<: *base`) may be overridden, that is its purpose
            key, line = self.construct_object(key_node), key_node.start_mark.line + 1
            if key in seen:
                raise _Refused(
                    line, f"key {quote(key)} given twice in one mapping (first on line {seen[key]})"
                )
            seen[key] = line
        return node


class _Duplicates(dict):  # type: ignore[type-arg]
    """A JSON object in which `key` was given more than once (found after loading, with its path)."""

    key: str


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    marked = _Duplicates(result)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.key = key
            break
        seen.add(key)
    return marked


_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)  # strings, then brackets


def _json_scan(text: str) -> int:
    """Refuse JSON nested deeper than MAX_DEPTH, with the line, before the recursive parser sees it; return
    the line of the first key given twice in one object (0: none), which `json` cannot tell."""
    open_objects: list[set[str] | None] = []  # per open bracket: the keys seen (objects) or None (arrays)
    duplicate_line = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char in ("[", "{"):
            open_objects.append(set() if char == "{" else None)
            if len(open_objects) > MAX_DEPTH:
                raise _Refused(
                    text.count("\n", 0, token.start()) + 1, f"nested more than {MAX_DEPTH} levels deep"
                )
        elif char in ("]", "}"):
            if open_objects:
                open_objects.pop()
        elif not duplicate_line and open_objects and open_objects[-1] is not None:
            if not text[token.end() :].lstrip(" \t\r\n").startswith(":"):
                continue  # a string value, not a key
            try:
                key = json.loads(char)
            except ValueError:
                continue  # the parser reports it
            if key in open_objects[-1]:
                duplicate_line = text.count("\n", 0, token.start()) + 1
            open_objects[-1].add(key)
    return duplicate_line


def _find_duplicate(data: Any, path: str = "", kind: str = "") -> str | None:
    """`groups[0] (Ext Co): key 'ttl_days' given twice`, for the first JSON object with a repeated key."""
    if isinstance(data, _Duplicates):
        return f"{path + ': ' if path else ''}key {quote(data.key)} given twice in one object"
    if isinstance(data, dict):
        for key, value in data.items():
            found = _find_duplicate(value, f"{path}.{key}" if path else key, key)
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            where = f"{path}[{i}]"
            if isinstance(value, dict) and kind in KEYS and KEYS[kind] in value:
                where += f" ({label(value[KEYS[kind]])})"
            found = _find_duplicate(value, where)
            if found:
                return found
    return None


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        duplicate_line = _json_scan(text)
        data = json.loads(text, object_pairs_hook=_json_object)
        duplicate = _find_duplicate(data)
        if duplicate:
            raise _Refused(duplicate_line, duplicate)
        return data
    loader = _StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_export(path: Path) -> LimsExport:
    """Parse and validate a LIMS export (JSON or YAML); every problem is an InvalidInput naming the file."""
    try:
        with path.open("rb") as stream:  # read at most one byte too many: a FIFO or /dev/zero ends here too
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc}") from None
    if len(raw) > MAX_BYTES:
        raise InvalidInput(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB; is this a LIMS export?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(f"{path}:{line}: not UTF-8 text: {exc.reason}") from None
    fmt = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        data = _parse(path, text)
    except _Refused as exc:
        raise InvalidInput(f"{path}{f':{exc.line}' if exc.line else ''}: {exc.message}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise InvalidInput(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, 2026-02-30 as a YAML date
        raise InvalidInput(f"{path}: not valid {fmt}: {quote(str(exc))}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping with groups, users, projects, pools, runs")
    try:
        return LimsExport.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{path}: {_describe(exc, data)}") from None


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist, _SHORT_REPR.maxdict = 2, 4, 4
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 60


def shown(value: object, limit: int = 200) -> str:
    """A value for an error line, bounded. A list or mapping is cut before its repr is built: with YAML
    aliases a few lines can be a structure of millions of items, whose full repr alone takes seconds."""
    if isinstance(value, (list, dict, tuple, set)):
        return _SHORT_REPR.repr(value)[:limit]
    return quote(value, limit=limit)


def label(value: object) -> str:
    """A record's name as it appears in an error line: as is when it is a short plain name, else quoted."""
    if isinstance(value, str) and value.isprintable() and len(value) <= 60:
        return value
    return shown(value, limit=60)


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first error as `pools[2] (SLX-1).samples[0].index: message (got 'X')`, plus a count of others."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    parts: list[str] = []
    node: Any = data
    for i, step in enumerate(loc):
        if isinstance(step, int):
            parts[-1] += f"[{step}]"
            node = node[step] if isinstance(node, list) and step < len(node) else None
            kind = loc[i - 1] if i else None
            if isinstance(node, dict) and kind in KEYS and node.get(KEYS[str(kind)]) is not None:
                parts[-1] += f" ({label(node.get(KEYS[str(kind)]))})"
        else:
            parts.append(str(step))
            node = node.get(step) if isinstance(node, dict) else None
    where = ".".join(parts) or "file"
    got = "" if err["type"] == "missing" else f" (got {shown(err.get('input'))})"
    more = len(exc.errors()) - 1
    return f"{where}: {err['msg']}{got}" + (f"; and {more} more error(s)" if more else "")
