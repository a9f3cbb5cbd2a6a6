"""A CRI client over gRPC: one method per RPC the tests use, dicts in and out.

grpcio carries the calls over the unix socket (HTTP/2); requests and responses are encoded
with `wire` from the tables in `messages`, so no generated code and no .proto are needed.
"""

from __future__ import annotations

import os

from tests.e2e.cri import messages, wire

API = "runtime.v1"


class CriError(RuntimeError):
    """A CRI call that the server answered with an error status."""

    def __init__(self, method: str, code: str, details: str):
        super().__init__(f"{method}: {code}: {details}")
        self.code = code
        self.details = details


def _import_grpc():
    # gRPC's fork support restarts its poller thread in every forked child; a child that
    # closes its fds before exec (subprocess's close_fds) then dies on EBADF with a gRPC
    # error on its stderr (grpc/grpc#43055). Every later test of this process that runs a
    # program would see that instead of the program. The client never forks itself.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    import grpc

    return grpc


def grpc_available() -> str | None:
    """None when the client can work here, else why not."""
    try:
        _import_grpc()
    except ImportError:
        return "the CRI client needs grpcio (pip install -e '.[test]')"
    return None


class CriClient:
    def __init__(self, socket_path: str, timeout: float = 120):
        grpc = _import_grpc()
        self._grpc = grpc
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self._calls = {}
        for service, methods in (("RuntimeService", messages.RUNTIME_SERVICE),
                                 ("ImageService", messages.IMAGE_SERVICE)):
            for method, (request, response) in methods.items():
                self._calls[method] = self.channel.unary_unary(
                    f"/{API}.{service}/{method}",
                    request_serializer=lambda msg, table=request: wire.encode(table, msg),
                    response_deserializer=lambda data, table=response: wire.decode(table, data))

    def call(self, method: str, request: dict | None = None, timeout: float | None = None) -> dict:
        try:
            return self._calls[method](request or {}, timeout=timeout or self.timeout)
        except self._grpc.RpcError as e:
            raise CriError(method, e.code().name, e.details()) from None

    def close(self) -> None:
        self.channel.close()

    # -- the calls, named as in the API ---------------------------------------------------
    def version(self) -> dict:
        return self.call("Version", {"version": "v1"}, timeout=5)

    def run_pod_sandbox(self, config: dict, handler: str) -> str:
        return self.call("RunPodSandbox", {"config": config, "runtime_handler": handler})["pod_sandbox_id"]

    def stop_pod_sandbox(self, pod_id: str) -> None:
        self.call("StopPodSandbox", {"pod_sandbox_id": pod_id})

    def remove_pod_sandbox(self, pod_id: str) -> None:
        self.call("RemovePodSandbox", {"pod_sandbox_id": pod_id})

    def pod_sandbox_status(self, pod_id: str, verbose: bool = False) -> dict:
        return self.call("PodSandboxStatus", {"pod_sandbox_id": pod_id, "verbose": verbose})

    def list_pod_sandboxes(self) -> list[dict]:
        return self.call("ListPodSandbox")["items"]

    def create_container(self, pod_id: str, config: dict, sandbox_config: dict) -> str:
        return self.call("CreateContainer", {"pod_sandbox_id": pod_id, "config": config,
                                             "sandbox_config": sandbox_config})["container_id"]

    def start_container(self, container_id: str) -> None:
        self.call("StartContainer", {"container_id": container_id})

    def stop_container(self, container_id: str, timeout: int) -> None:
        self.call("StopContainer", {"container_id": container_id, "timeout": timeout},
                  timeout=timeout + 60)

    def remove_container(self, container_id: str) -> None:
        self.call("RemoveContainer", {"container_id": container_id})

    def container_status(self, container_id: str, verbose: bool = False) -> dict:
        return self.call("ContainerStatus", {"container_id": container_id, "verbose": verbose})

    def list_containers(self) -> list[dict]:
        return self.call("ListContainers")["containers"]

    def exec_sync(self, container_id: str, cmd: list[str], timeout: int = 30) -> tuple[int, str, str]:
        r = self.call("ExecSync", {"container_id": container_id, "cmd": cmd, "timeout": timeout},
                      timeout=timeout + 30)
        return (r.get("exit_code", 0), r.get("stdout", b"").decode(errors="replace"),
                r.get("stderr", b"").decode(errors="replace"))

    def image_status(self, image: str) -> dict | None:
        return self.call("ImageStatus", {"image": {"image": image}}).get("image")
