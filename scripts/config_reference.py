"""Write the configuration reference into README.md from the config models themselves.

    .venv/bin/python scripts/config_reference.py          # rewrite README.md
    .venv/bin/python scripts/config_reference.py --check  # exit 1 if README.md is stale

The reference sits between the CONFIG-REFERENCE markers; tests run --check, so the README
cannot drift from the code.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from connectors.registry import available, load_sink, load_source
from hub.config import ApiConfig, KafkaLogConfig, LogConfig, TopicOverride

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- CONFIG-REFERENCE -->", "<!-- /CONFIG-REFERENCE -->"


def _unit(info: FieldInfo) -> str | None:
    text = repr(info.annotation) + repr(info.metadata)
    if "parse_duration_ms" in text:
        return "duration"
    if "parse_bytes" in text:
        return "size"
    return None


def _ms(value: int) -> str:
    for unit, n in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if value and value % n == 0:
            return f"{value // n}{unit}"
    return f"{value}ms"


def _bytes(value: int) -> str:
    for unit, n in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if value and value % n == 0:
            return f"{value // n}{unit}"
    return str(value)


def _type(info: FieldInfo) -> str:
    unit = _unit(info)
    optional = "None" in repr(info.annotation)
    if unit:
        return f"{unit} \\| null" if optional else unit
    text = repr(info.annotation) if not isinstance(info.annotation, type) else (
        info.annotation.__name__)
    text = re.sub(r"typing\.|pathlib\.|hub\.units\.|connectors\.[\w.]+\.|annotated_types\.", "",
                  text)
    text = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", text)
    text = re.sub(r"Optional\[(.*)\]$", r"\1 | null", text)
    text = text.replace("NoneType", "null").replace("None", "null").replace("Literal", "one of ")
    text = text.replace("pydantic.types.", "").replace("hub.config.", "")
    return text.replace("|", "\\|")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value: Any = info.default
    if value is PydanticUndefined and info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "see below"
    if value is None:
        return "—"
    unit = _unit(info)
    if unit == "duration" and isinstance(value, int):
        return f"`{_ms(value)}`"
    if unit == "size" and isinstance(value, int):
        return f"`{_bytes(value)}`"
    return f"`{value}`"


def table(title: str, model: type[BaseModel], skip: tuple[str, ...] = ()) -> str:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    lines = [f"#### {title}", "", doc, "", "| key | type | default | meaning |",
             "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        key = info.alias or name
        desc = (info.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {_type(info)} | {_default(info)} | {desc} |")
    return "\n".join(lines) + "\n"


def reference() -> str:
    parts = [
        table("log", LogConfig),
        table("log.kafka", KafkaLogConfig),
        table("topics.<name or glob>", TopicOverride),
        table("api", ApiConfig),
    ]
    for name in available("source"):
        parts.append(table(f"sources: type {name}", load_source(name).config_model))
    for name in available("sink"):
        parts.append(table(f"sinks: type {name}", load_sink(name).config_model))
    return "\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    check = p.parse_args().check
    text = README.read_text()
    if START not in text:
        sys.exit(f"README.md has no {START} marker")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1] if END in rest else rest
    new = f"{head}{START}\n\n{reference()}\n{END}{tail}"
    if check:
        if new != text:
            sys.exit("README.md's configuration reference is stale: run "
                     ".venv/bin/python scripts/config_reference.py")
        return
    README.write_text(new)


if __name__ == "__main__":
    main()
