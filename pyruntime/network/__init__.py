"""Container networking for pyruntime: the network modes, the OCI hook that runs a CNI network
configuration list for a container, and the `spec --network` transformation."""
