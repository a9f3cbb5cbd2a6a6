"""The CRI runtime.v1 messages the tests send and read, as `wire` tables.

Only the fields used here are listed; field numbers are those of the published CRI API
(k8s.io/cri-api, package runtime.v1). Enums travel as integers: see the constants below.
"""

from __future__ import annotations

# NamespaceMode
POD, CONTAINER, NODE = 0, 1, 2
# ContainerState
CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_EXITED, CONTAINER_UNKNOWN = 0, 1, 2, 3
# PodSandboxState
SANDBOX_READY, SANDBOX_NOTREADY = 0, 1
# Protocol
TCP, UDP = 0, 1

STRING_ID = {"id": (1, "string")}

VersionRequest = {"version": (1, "string")}
VersionResponse = {"version": (1, "string"), "runtime_name": (2, "string"),
                   "runtime_version": (3, "string"), "runtime_api_version": (4, "string")}

PodSandboxMetadata = {"name": (1, "string"), "uid": (2, "string"), "namespace": (3, "string"),
                      "attempt": (4, "uint32")}
PortMapping = {"protocol": (1, "enum"), "container_port": (2, "int32"), "host_port": (3, "int32"),
               "host_ip": (4, "string")}
NamespaceOption = {"network": (1, "enum"), "pid": (2, "enum"), "ipc": (3, "enum"),
                   "target_id": (4, "string")}
LinuxSandboxSecurityContext = {"namespace_options": (1, NamespaceOption)}
LinuxPodSandboxConfig = {"cgroup_parent": (1, "string"),
                         "security_context": (2, LinuxSandboxSecurityContext)}
PodSandboxConfig = {"metadata": (1, PodSandboxMetadata), "hostname": (2, "string"),
                    "log_directory": (3, "string"), "port_mappings": (5, ("repeated", PortMapping)),
                    "labels": (6, "map"), "annotations": (7, "map"),
                    "linux": (8, LinuxPodSandboxConfig)}

RunPodSandboxRequest = {"config": (1, PodSandboxConfig), "runtime_handler": (2, "string")}
RunPodSandboxResponse = {"pod_sandbox_id": (1, "string")}
PodSandboxIdRequest = {"pod_sandbox_id": (1, "string")}  # Stop- and RemovePodSandboxRequest
Empty: dict = {}
PodSandboxStatusRequest = {"pod_sandbox_id": (1, "string"), "verbose": (2, "bool")}
PodSandboxNetworkStatus = {"ip": (1, "string")}
PodSandboxStatus = {"id": (1, "string"), "metadata": (2, PodSandboxMetadata), "state": (3, "enum"),
                    "network": (5, PodSandboxNetworkStatus), "runtime_handler": (9, "string")}
PodSandboxStatusResponse = {"status": (1, PodSandboxStatus), "info": (2, "map")}
PodSandbox = {"id": (1, "string"), "metadata": (2, PodSandboxMetadata), "state": (3, "enum"),
              "runtime_handler": (7, "string")}
ListPodSandboxRequest: dict = {}
ListPodSandboxResponse = {"items": (1, ("repeated", PodSandbox))}

ImageSpec = {"image": (1, "string")}
KeyValue = {"key": (1, "string"), "value": (2, "string")}
LinuxContainerResources = {"cpu_period": (1, "int64"), "cpu_quota": (2, "int64"),
                           "cpu_shares": (3, "int64"), "memory_limit_in_bytes": (4, "int64"),
                           "oom_score_adj": (5, "int64")}
LinuxContainerSecurityContext = {"namespace_options": (3, NamespaceOption)}
LinuxContainerConfig = {"resources": (1, LinuxContainerResources),
                        "security_context": (2, LinuxContainerSecurityContext)}
ContainerMetadata = {"name": (1, "string"), "attempt": (2, "uint32")}
ContainerConfig = {"metadata": (1, ContainerMetadata), "image": (2, ImageSpec),
                   "command": (3, ("repeated", "string")), "args": (4, ("repeated", "string")),
                   "working_dir": (5, "string"), "envs": (6, ("repeated", KeyValue)),
                   "labels": (9, "map"), "annotations": (10, "map"), "log_path": (11, "string"),
                   "linux": (15, LinuxContainerConfig)}
CreateContainerRequest = {"pod_sandbox_id": (1, "string"), "config": (2, ContainerConfig),
                          "sandbox_config": (3, PodSandboxConfig)}
CreateContainerResponse = {"container_id": (1, "string")}
ContainerIdRequest = {"container_id": (1, "string")}  # Start- and RemoveContainerRequest
StopContainerRequest = {"container_id": (1, "string"), "timeout": (2, "int64")}
ContainerStatusRequest = {"container_id": (1, "string"), "verbose": (2, "bool")}
ContainerStatus = {"id": (1, "string"), "metadata": (2, ContainerMetadata), "state": (3, "enum"),
                   "created_at": (4, "int64"), "started_at": (5, "int64"),
                   "finished_at": (6, "int64"), "exit_code": (7, "int32"),
                   "reason": (10, "string"), "message": (11, "string"), "log_path": (15, "string")}
ContainerStatusResponse = {"status": (1, ContainerStatus), "info": (2, "map")}
Container = {"id": (1, "string"), "pod_sandbox_id": (2, "string"),
             "metadata": (3, ContainerMetadata), "state": (6, "enum")}
ListContainersRequest: dict = {}
ListContainersResponse = {"containers": (1, ("repeated", Container))}
ExecSyncRequest = {"container_id": (1, "string"), "cmd": (2, ("repeated", "string")),
                   "timeout": (3, "int64")}
ExecSyncResponse = {"stdout": (1, "bytes"), "stderr": (2, "bytes"), "exit_code": (3, "int32")}

Image = {"id": (1, "string"), "repo_tags": (2, ("repeated", "string"))}
ImageStatusRequest = {"image": (1, ImageSpec), "verbose": (2, "bool")}
ImageStatusResponse = {"image": (1, Image)}

# method name -> (request table, response table), per service
RUNTIME_SERVICE = {
    "Version": (VersionRequest, VersionResponse),
    "RunPodSandbox": (RunPodSandboxRequest, RunPodSandboxResponse),
    "StopPodSandbox": (PodSandboxIdRequest, Empty),
    "RemovePodSandbox": (PodSandboxIdRequest, Empty),
    "PodSandboxStatus": (PodSandboxStatusRequest, PodSandboxStatusResponse),
    "ListPodSandbox": (ListPodSandboxRequest, ListPodSandboxResponse),
    "CreateContainer": (CreateContainerRequest, CreateContainerResponse),
    "StartContainer": (ContainerIdRequest, Empty),
    "StopContainer": (StopContainerRequest, Empty),
    "RemoveContainer": (ContainerIdRequest, Empty),
    "ContainerStatus": (ContainerStatusRequest, ContainerStatusResponse),
    "ListContainers": (ListContainersRequest, ListContainersResponse),
    "ExecSync": (ExecSyncRequest, ExecSyncResponse),
}
IMAGE_SERVICE = {
    "ImageStatus": (ImageStatusRequest, ImageStatusResponse),
}
