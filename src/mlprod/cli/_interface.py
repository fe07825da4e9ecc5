"""``mlprod interface``: the service's OpenAPI document from mlprod.yaml alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from mlprod.cli._common import JsonOption, print_json
from mlprod.errors import SpecError
from mlprod.spec import SPEC_FILE, load_spec


def interface(
    spec: Annotated[Path, typer.Argument(help="The spec file.")] = Path(SPEC_FILE),
    json: JsonOption = False,
) -> None:
    """Print the OpenAPI document of the spec's interface: no data, model or store needed.

    A consuming team builds against it on day one; every trained version is checked
    against the same section and served by the same document.
    """
    from mlprod.features import contract_signature
    from mlprod.serving import interface_document

    project = load_spec(spec)
    if project.interface is None:
        raise SpecError(
            f"{spec} has no `interface:` section, so there is no contract to print yet: add "
            'one (request fields with their types, see the README\'s "The spec"), or let '
            "`mlprod init --data FILE --target COLUMN --output draft.yaml` draft it from "
            "your data"
        )
    signature = contract_signature(
        project.interface, entity=project.data.entity, time=project.data.time
    )
    document = interface_document(project.name, signature, project.description)
    if json:
        print_json(document)
        return
    sys.stdout.write(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
