"""Load a campaign definition (the survey methodology) from a YAML or JSON file.

The file is what a methodologist edits; the validated `Campaign` is what goes on the log. A
bad file must be fixable in one pass, so every problem is reported at once, each with a dotted
path (``forms[2].criteria[0].questions[1].max_points``) and, for YAML, the line it sits on.

Top-level keys starting with ``x-`` are dropped before validation: they exist only to hold YAML
anchors (shared answer scales, shared criteria) so a file need not repeat itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from contracts.campaign import Campaign

__all__ = [
    "CampaignFileError",
    "format_loc",
    "load_campaign_file",
    "load_shipped",
    "parse_campaign",
    "shipped_campaign_path",
]

CAMPAIGNS_DIR = Path(__file__).resolve().parent / "campaigns"
_SHIPPED_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_YAML_SUFFIXES = {".yaml", ".yml"}
_JSON_SUFFIXES = {".json"}

ErrorList = list[tuple[str, str]]


class CampaignFileError(ValueError):
    """Every problem found in a campaign file, as ``(path, message)`` pairs.

    ``path`` is dotted/indexed (``quotas[3].unit_code``); ``""`` means the document as a whole.
    """

    def __init__(self, errors: list[tuple[str, str]], source: str | None = None) -> None:
        self.errors: ErrorList = list(errors)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        head = f"invalid campaign file {self.source}" if self.source else "invalid campaign"
        lines = [f"{head}: {len(self.errors)} error(s)"]
        lines += [f"  {path or '(root)'}: {message}" for path, message in self.errors]
        return "\n".join(lines)

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.errors]


# Reading ---------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """Safe YAML with exact decimals and no silently-overwritten duplicate keys."""


def _construct_decimal(loader: _Loader, node: yaml.ScalarNode) -> Any:
    # Points and weights are compared exactly (a criterion's questions must sum to its max),
    # so never let them pass through binary floats.
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except ArithmeticError:
        return loader.construct_yaml_float(node)  # .inf / .nan spellings


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)  # resolve `<<: *anchor` merges first
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # construct_mapping below reports it
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r} (first defined on line "
                f"{seen[key].start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def _yaml_error(exc: yaml.YAMLError) -> tuple[str, str]:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        what = ": ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return "", f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {what}"
    return "", f"YAML syntax error: {exc}"


def _read(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse the file; return the data and, for YAML, its node tree (to locate errors)."""
    suffix = path.suffix.lower()
    if suffix not in _YAML_SUFFIXES | _JSON_SUFFIXES:
        raise CampaignFileError(
            [("", f"unsupported file extension {path.suffix!r}; use .yaml, .yml or .json")],
            str(path),
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignFileError([("", f"cannot read file: {exc}")], str(path)) from exc
    if suffix in _JSON_SUFFIXES:
        try:
            return json.loads(text, parse_float=Decimal), None
        except json.JSONDecodeError as exc:
            msg = f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            raise CampaignFileError([("", msg)], str(path)) from exc
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise CampaignFileError([_yaml_error(exc)], str(path)) from exc
    return data, node


# Locating errors -------------------------------------------------------------------------


def format_loc(loc: Iterable[int | str]) -> str:
    """Turn a pydantic loc tuple into ``forms[2].criteria[0].max_points``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (where the fix goes)."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            match = node.value[part] if 0 <= part < len(node.value) else None
        else:
            match = None
        if match is None:
            break
        node = match
        line = node.start_mark.line + 1
    return line


# Cross-reference checks ------------------------------------------------------------------
# Campaign._references runs only once every field is valid and reports one joined message at
# the root. These re-run the same checks on the raw data so each reference error gets its own
# path and is reported alongside field errors. Messages match the model's wording, so any check
# the model has that this file lacks still surfaces (at the root) rather than being lost.


def _items(data: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, Mapping)]


def _codes(data: Mapping[str, Any], key: str) -> list[tuple[int, str]]:
    return [(i, str(v["code"])) for i, v in _items(data, key) if isinstance(v.get("code"), str)]


def _as_datetime(value: Any) -> datetime | None:
    try:
        dt = TypeAdapter(datetime).validate_python(value)
    except ValidationError:
        return None
    return dt if dt.tzinfo is not None else None


def _reference_errors(data: Mapping[str, Any]) -> list[tuple[tuple[int | str, ...], str]]:
    errors: list[tuple[tuple[int | str, ...], str]] = []
    unit_codes = _codes(data, "units")
    form_codes = _codes(data, "forms")
    units = {c for _, c in unit_codes}
    forms = {c for _, c in form_codes}

    for key, codes, what in (("units", unit_codes, "unit"), ("forms", form_codes, "form")):
        seen: set[str] = set()
        for i, dup in codes:
            if dup in seen:
                errors.append(((key, i, "code"), f"duplicate {what} codes"))
            seen.add(dup)

    for i, form in _items(data, "forms"):
        code = form.get("code")
        rated = form.get("rated_units")
        if isinstance(rated, list):
            for j, unit in enumerate(rated):
                if unit not in units:
                    errors.append(
                        (("forms", i, "rated_units", j), f"form {code} rates unknown unit {unit}")
                    )
        if form.get("rates") == "many_units" and not rated:
            errors.append(
                (
                    ("forms", i, "rated_units"),
                    f"form {code} rates many_units but lists no rated_units",
                )
            )
        seen_q: set[str] = set()
        for c, crit in _items(form, "criteria"):
            for q, question in _items(crit, "questions"):
                qid = question.get("id")
                if not isinstance(qid, str):
                    continue
                if qid in seen_q:
                    errors.append(
                        (
                            ("forms", i, "criteria", c, "questions", q, "id"),
                            f"form {code} has duplicate question ids",
                        )
                    )
                seen_q.add(qid)

    for i, quota in _items(data, "quotas"):
        form_code = quota.get("form_code")
        if form_code is not None and form_code not in forms:
            errors.append((("quotas", i, "form_code"), f"quota names unknown form {form_code}"))
        unit = quota.get("unit_code")
        if unit is not None and unit not in units:
            errors.append((("quotas", i, "unit_code"), f"quota names unknown unit {unit}"))

    deadline = _as_datetime(data.get("deadline"))
    for i, wave in _items(data, "waves"):
        wid = wave.get("id")
        opens = _as_datetime(wave.get("opens_at"))
        if deadline is not None and opens is not None and opens >= deadline:
            errors.append((("waves", i, "opens_at"), f"wave {wid} opens after the deadline"))
        for m, member in _items(wave, "members"):
            form_code = member.get("form_code")
            if form_code is not None and form_code not in forms:
                errors.append(
                    (
                        ("waves", i, "members", m, "form_code"),
                        f"wave {wid} names unknown form {form_code}",
                    )
                )
            unit_list = member.get("unit_codes")
            for u, unit in enumerate(unit_list if isinstance(unit_list, list) else []):
                if unit not in units:
                    errors.append(
                        (
                            ("waves", i, "members", m, "unit_codes", u),
                            f"wave {wid} names unknown unit {unit}",
                        )
                    )

    priority = data.get("form_priority")
    for i, code in enumerate(priority if isinstance(priority, list) else []):
        if code not in forms:
            errors.append((("form_priority", i), f"form_priority names unknown form {code}"))
    return errors


# Validation ------------------------------------------------------------------------------


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg


def _validate(data: Any, root: yaml.Node | None, source: str | None) -> Campaign:
    if not isinstance(data, Mapping):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise CampaignFileError(
            [("", f"a campaign must be a mapping of fields at the top level, got {kind}")], source
        )
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        refs = _reference_errors(data)
    except TypeError:  # a list or mapping where a code belongs: pydantic reports it with its path
        refs = []
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        pydantic_errors = exc.errors(include_url=False)
    else:
        if not refs:
            return campaign
        pydantic_errors = []  # cannot happen while the checks mirror the model; be safe anyway

    located: list[tuple[tuple[int | str, ...], str]] = []
    ref_messages = {msg for _, msg in refs}
    for err in pydantic_errors:
        loc = tuple(err["loc"])
        msg = _message(err)
        if not loc:  # Campaign._references: keep only the parts not already located
            leftover = [m for m in msg.split("; ") if m not in ref_messages]
            if leftover:
                located.append(((), "; ".join(leftover)))
            continue
        located.append((loc, msg))
    located.extend(refs)

    errors: ErrorList = []
    for loc, msg in located:
        line = _line_of(root, loc) if root is not None else None
        entry = (format_loc(loc), f"{msg} (line {line})" if line else msg)
        if entry not in errors:
            errors.append(entry)
    raise CampaignFileError(errors, source)


def parse_campaign(data: dict[str, Any]) -> Campaign:
    """Validate already-parsed campaign data, reporting every error with its path."""
    return _validate(data, None, None)


def load_campaign_file(path: str | Path) -> Campaign:
    """Read a ``.yaml``/``.yml``/``.json`` campaign file and validate it completely."""
    p = Path(path)
    data, root = _read(p)
    return _validate(data, root, str(p))


def shipped_campaign_path(name: str = "soctrang-2023") -> Path:
    """Path of a campaign definition shipped with the package (``campaigns/<name>.yaml``)."""
    if not _SHIPPED_NAME.match(name):
        raise CampaignFileError([("", f"invalid shipped campaign name {name!r}")])
    path = CAMPAIGNS_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CAMPAIGNS_DIR.glob("*.yaml"))
        raise CampaignFileError(
            [("", f"no shipped campaign {name!r}; available: {', '.join(known) or 'none'}")]
        )
    return path


def load_shipped(name: str = "soctrang-2023") -> Campaign:
    """Load a campaign definition shipped with the package."""
    return load_campaign_file(shipped_campaign_path(name))
