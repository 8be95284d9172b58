"""JSON text as ``json.dumps`` writes it, with the standard library's C encoder made once.

``json.dumps`` makes a new encoder at every call: about a sixth of encoding a small dict,
and a cycle at 100,000 series encodes a few hundred thousand (the store's bulk writes,
``monitor eval``'s lines). No circular check: the values are JSON data. Depends on
nothing above the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def encoder(*, sort_keys: bool = False) -> Callable[[Any], str]:
    """Return a function giving ``json.dumps(value, sort_keys=sort_keys)``."""
    plain = json.JSONEncoder(sort_keys=sort_keys)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # a Python without the C accelerator
        return plain.encode
    made = make(None, plain.default, json.encoder.encode_basestring_ascii, None,
                plain.key_separator, plain.item_separator, sort_keys, False, True)

    def dumps(value: Any) -> str:
        if isinstance(value, str):  # as json.dumps: the C encoder takes containers
            return json.encoder.encode_basestring_ascii(value)
        return "".join(made(value, 0))
    return dumps
