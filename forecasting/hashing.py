"""One recipe for content hashes: settings as canonical JSON, then the bytes of pandas' row hashes.

Checkpoint keys, paper-model keys, data fingerprints, config hashes and the provenance hash of the
bars read all come from here, so a key means the same thing wherever it is compared.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable


def content_hash(settings: object = None, frames: Iterable = (), named: bool = False, length: int = 16) -> str:
    """sha256 of `settings` (JSON, sorted keys; None: nothing) and then of each frame's rows, index
    included; with `named`, `frames` holds (name, frame) pairs and each name is hashed before its frame."""
    import pandas as pd

    digest = (
        hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
        if settings is not None
        else hashlib.sha256()
    )
    for item in frames:
        if named:
            name, item = item
            digest.update(str(name).encode())
        digest.update(pd.util.hash_pandas_object(item, index=True).to_numpy().tobytes())
    return digest.hexdigest()[:length]
