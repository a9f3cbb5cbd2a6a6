"""config.json loading (replaced by the validating loader)."""

import json
import os

from pyruntime.errors import RuntimeUserError


def load_config(bundle: str) -> dict:
    if not os.path.isdir(bundle):
        raise RuntimeUserError(f"bundle {bundle!r} is not a directory")
    try:
        with open(os.path.join(bundle, "config.json")) as f:
            return json.load(f)
    except OSError as e:
        raise RuntimeUserError(f"cannot read {bundle}/config.json: {e.strerror}") from None
    except ValueError as e:
        raise RuntimeUserError(f"{bundle}/config.json is not valid JSON: {e}") from None
