"""The pyruntime-bridge CNI plugin (also a host-local IPAM plugin for other main plugins)."""
