"""Names of everything the plugin creates on the host, derived so that DEL and GC can find it.

Host veth ends and an attachment's firewall chains are named from a hash of the attachment
(container id and interface name; chains also the network), so a DEL needs nothing but
CNI_CONTAINERID and CNI_IFNAME to find them, even when the netns and the IPAM lease are already
gone. What a network's attachments share is named from a hash of the network name and settings.
"""

from __future__ import annotations

import hashlib

VETH_PREFIX = "pyr"          # + 12 hex = 15 characters, the kernel's limit
CHAIN_PREFIX = "PYR-"
COMMENT_PREFIX = "pyruntime/"


def veth_name(container_id: str, ifname: str) -> str:
    digest = hashlib.sha256(f"{container_id}\0{ifname}".encode()).hexdigest()
    return VETH_PREFIX + digest[:12]


def attachment_tag(network: str, container_id: str, ifname: str) -> str:
    """16 hex digits naming one attachment in chain names and rule comments."""
    return hashlib.sha256(f"{network}\0{container_id}\0{ifname}".encode()).hexdigest()[:16]


def network_tag(network: str, bridge: str, ip_masq: bool, mark_bit: int) -> str:
    """16 hex digits naming what all attachments of one network share. The settings it is
    made from are part of the name: attachments made after the network's config changed
    get a shared part of their own instead of one that does not fit them."""
    text = f"network\0{network}\0{bridge}\0{int(ip_masq)}\0{mark_bit}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def forward_chain(network_tag: str) -> str:
    return f"{CHAIN_PREFIX}FW-{network_tag}"


def masq_chain(network_tag: str) -> str:
    return f"{CHAIN_PREFIX}SN-{network_tag}"


def dnat_chain(tag: str) -> str:
    return f"{CHAIN_PREFIX}DN-{tag}"


def rule_comment(tag: str, network: str, container_id: str) -> str:
    # netfilter keeps at most 255 bytes of a comment
    return f"{COMMENT_PREFIX}{tag}/{network}/{container_id}"[:255]


def network_comment(network_tag: str, network: str) -> str:
    return f"{COMMENT_PREFIX}{network_tag}/{network}"[:255]

