"""Configuration folders: one YAML file per section (rate_cards.yaml,
workers.yaml, ...) or whole documents, merged and validated with every
problem named by file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from billbridge.domain.config import ConfigError, Configuration, load_configuration

SECTIONS = tuple(Configuration.model_fields)


def read_document(path: Path) -> dict[str, Any]:
    """A folder of YAML files, or one file, as one configuration document."""
    files = sorted(p for p in path.glob("*.y*ml")) if path.is_dir() else [path]
    if not files:
        raise ConfigError(f"{path}: no YAML files")
    document: dict[str, Any] = {}
    for file in files:
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            if isinstance(loaded, list) and file.stem in SECTIONS:
                loaded = {file.stem: loaded}  # rate_cards.yaml holding just the list
            else:
                raise ConfigError(f"{file}: expected a mapping of sections or a list named "
                                  f"after its section ({', '.join(SECTIONS)})")
        for section, value in loaded.items():
            if section in document and isinstance(value, list):
                document[section] = [*document[section], *value]
            elif section in document:
                raise ConfigError(f"{file}: section {section!r} is defined twice")
            else:
                document[section] = value
    return document


def load_folder(path: Path) -> tuple[dict[str, Any], Configuration]:
    document = read_document(path)
    return document, load_configuration(document)
