"""A small CRI client and a private containerd with the CRI plugin, for the Kubernetes
end-to-end test (tests/e2e/test_kubernetes.py) and bench/cri.py.

Debian ships no crictl, and the CRI client packages on PyPI are years out of date; this one
speaks the documented CRI gRPC API (runtime.v1) itself: grpcio carries the calls, and
`wire` encodes and decodes the few protobuf messages and fields the tests use (`messages`).
"""
