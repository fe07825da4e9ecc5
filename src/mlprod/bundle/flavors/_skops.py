"""skops files: scikit-learn objects saved without pickle, loaded only as allowed types.

skops records every type a file will build; saving records exactly that list in the
manifest, and loading refuses a file that asks for anything beyond it or beyond the
platform's allow-list, so a tampered or foreign file is never built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlprod.bundle.flavors._base import SavedModel
from mlprod.errors import IntegrityError

# Type prefixes a skops file may ask for; anything else is refused at load.
ALLOWED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "mlprod.features.", "builtins.")


def save_skops(obj: Any, path: Path, flavor: str) -> SavedModel:
    """skops-dump `obj` and record exactly the types its file will ask to build."""
    import skops.io as sio

    sio.dump(obj, path)
    needed = tuple(sorted(sio.get_untrusted_types(file=path)))
    check_allowed(needed, path.name)
    return SavedModel(flavor, path.name, needed)


def check_allowed(types: tuple[str, ...] | list[str], filename: str) -> None:
    """Refuse a file that asks for a type outside the platform's allow-list."""
    refused = [t for t in types if not t.startswith(ALLOWED_TYPE_PREFIXES)]
    if refused:
        raise IntegrityError(
            f"{filename} asks to load type(s) {refused}, which mlprod does not allow; "
            "only scikit-learn, numpy, scipy and mlprod feature types may be loaded"
        )


def load_skops(path: Path, recorded: list[str]) -> Any:
    """Load a skops file that asks for nothing beyond its recorded, allowed types."""
    import skops.io as sio

    needed = sio.get_untrusted_types(file=path)
    check_allowed(needed, path.name)
    extra = sorted(set(needed) - set(recorded))
    if extra:
        raise IntegrityError(f"{path.name} asks for types {extra} not recorded in its manifest")
    return sio.load(path, trusted=needed)
