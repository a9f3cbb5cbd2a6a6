"""pyruntime: an OCI container runtime, a CNI bridge plugin and the hooks that join them."""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
