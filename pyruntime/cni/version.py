"""CNI spec versions: which ones we speak and how they compare."""

from __future__ import annotations

from pyruntime.cni.errors import INCOMPATIBLE_VERSION, INVALID_CONFIG, CniError

CURRENT = "1.1.0"
SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


def parse(version: str) -> tuple[int, int, int]:
    parts = version.split(".") if isinstance(version, str) else []
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise CniError(INVALID_CONFIG, "invalid cniVersion", f"{version!r} is not MAJOR.MINOR.PATCH")
    return int(parts[0]), int(parts[1]), int(parts[2])


def require_supported(version: str) -> str:
    parse(version)
    if version not in SUPPORTED:
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {version!r}, plugin supports {', '.join(SUPPORTED)}")
    return version


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)
