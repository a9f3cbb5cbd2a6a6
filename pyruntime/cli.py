"""The `pyruntime` command line: runc's commands, flags and exit codes.

Only argument parsing lives here. Each command imports what it needs when it runs, so that a
`state` or `kill` does not pay for what `create` uses.
"""

from __future__ import annotations

import json
import os

import click

from pyruntime import log
from pyruntime.errors import RuntimeUserError


class Context:
    def __init__(self, root: str, debug: bool, cgroup_manager: str = "cgroupfs", criu: str = "criu"):
        self.root = root
        self.debug = debug
        self.cgroup_manager = cgroup_manager
        self.criu = criu


pass_ctx = click.make_pass_decorator(Context)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration (`1s`, `100ms`, `1h30m`, `1.5s`) or bare seconds, as seconds (>= 0.1)."""
    import re

    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise RuntimeUserError(f"--interval {text!r}: expected a duration such as 5s, 100ms or 1m30s") from None
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds < 0.1:
        raise RuntimeUserError(f"--interval {text!r}: at least 100ms")
    return seconds


def compact_json(value) -> str:
    """runc's machine-readable output (events, list and ps --format json): no spaces."""
    return json.dumps(value, separators=(",", ":"))


def _print_version(ctx: click.Context, _param, wanted: bool) -> None:
    if not wanted or ctx.resilient_parsing:
        return
    from pyruntime import buildinfo

    click.echo(buildinfo.version_text())
    ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", "-v", is_flag=True, is_eager=True, expose_value=False,
              callback=_print_version, help="Print the version, commit, spec and libseccomp version.")
@click.option("--root", default=None, envvar="PYRUNTIME_ROOT",
              help="Directory holding the containers' state (default: /run/pyruntime for root, "
                   "$XDG_RUNTIME_DIR/pyruntime for anyone else).")
@click.option("--log", "log_path", default="", help="Write log messages to this file (default: stderr).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--debug", is_flag=True, help="Debug logging, and tracebacks for internal errors.")
@click.option("--systemd-cgroup", is_flag=True, help="Use the systemd cgroup driver (not supported).")
@click.option("--cgroup-manager", type=click.Choice(["cgroupfs", "systemd", "disabled"]),
              default="cgroupfs", show_default=True,
              help="cgroupfs: a cgroup per container; disabled: none at all, linux.resources are "
                   "ignored (crun); systemd: not supported.")
@click.option("--rootless", default="auto", show_default=True,
              help="true, false or auto (not uid 0, or uid 0 in a user namespace): run as rootless.")
@click.option("--criu", default="criu", show_default=True,
              help="The criu program that checkpoint and restore run.")
@click.pass_context
def main_group(ctx: click.Context, root: str, log_path: str, log_format: str, debug: bool,
               systemd_cgroup: bool, cgroup_manager: str, rootless: str, criu: str) -> None:
    """pyruntime: run containers from OCI bundles (a runc-compatible runtime)."""
    from pyruntime import commands

    root = commands.setup(root, log_path, log_format, debug, rootless, cgroup_manager, systemd_cgroup)
    ctx.obj = Context(root, debug, cgroup_manager, criu)


bundle_option = click.option("--bundle", "-b", default=".", help="Path to the bundle (default: current directory).")
create_options = [
    bundle_option,
    click.option("--console-socket", default=None, help="AF_UNIX socket that receives the pty master."),
    click.option("--pid-file", default=None, help="Write the container init's pid to this file."),
    click.option("--no-pivot", is_flag=True, help="Use chroot instead of pivot_root."),
    click.option("--no-new-keyring", is_flag=True, help="Accepted: no session keyring is created."),
    click.option("--preserve-fds", type=click.IntRange(min=0), default=0,
                 help="Pass this many fds after stdio (3, 4, ...) to the container."),
    click.option("--config", "config_file", default=None,
                 help="A config file to use instead of the bundle's config.json (crun)."),
]


def with_options(options):
    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


@main_group.command()
@with_options(create_options)
@click.argument("container_id")
@pass_ctx
def create(ctx: Context, container_id, **options):
    """Create a container; its process waits for `start`."""
    from pyruntime import commands

    commands.create(ctx.root, container_id, cgroup_manager=ctx.cgroup_manager, **options)


@main_group.command()
@click.argument("container_id")
@pass_ctx
def start(ctx: Context, container_id):
    """Start the process of a created container."""
    from pyruntime import commands

    commands.start(ctx.root, container_id)


@main_group.command()
@with_options(create_options)
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the container to exit.")
@click.option("--keep", is_flag=True, hidden=True, help="Accepted for runc compatibility.")
@click.argument("container_id")
@pass_ctx
def run(ctx: Context, container_id, **options):
    """Create and start a container; wait for it and exit with its exit code."""
    from pyruntime import commands

    code = commands.run(ctx.root, container_id, cgroup_manager=ctx.cgroup_manager, **options)
    click.get_current_context().exit(code)


@main_group.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.option("--process", "-p", "process_file", default=None, help="process.json describing the process.")
@click.option("--tty", "-t", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("--console-socket", default=None, help="AF_UNIX socket that receives the pty master.")
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the process to exit.")
@click.option("--pid-file", default=None, help="Write the process's pid to this file.")
@click.option("--env", "-e", multiple=True, help="Set an environment variable (K=V).")
@click.option("--cwd", default=None, help="Working directory in the container.")
@click.option("--user", "-u", default=None, help="UID[:GID] to run as.")
@click.option("--additional-gids", "-g", multiple=True, type=int, help="Additional group ids.")
@click.option("--cap", "-c", multiple=True, help="Add a capability (e.g. CAP_NET_ADMIN).")
@click.option("--no-new-privs", is_flag=True, help="Set no_new_privs for the process.")
@click.option("--preserve-fds", type=click.IntRange(min=0), default=0)
@click.option("--process-label", default="", hidden=True, help="Accepted; SELinux is not supported.")
@click.option("--apparmor", default="", hidden=True, help="Accepted; AppArmor is not supported.")
@click.option("--cgroup", "cgroup_paths", multiple=True,
              help="Run the process in an (existing) sub-cgroup of the container's: [controller[,...]:]path.")
@click.option("--ignore-paused", is_flag=True, help="Allow exec in a paused container.")
@click.argument("container_id")
@click.argument("command", nargs=-1)
@pass_ctx
def exec_command(ctx: Context, container_id, command, process_file, tty, console_socket, detach,
                 pid_file, env, cwd, user, additional_gids, cap, no_new_privs, preserve_fds,
                 process_label, apparmor, cgroup_paths, ignore_paused):
    """Run another process in a running container."""
    from pyruntime import commands

    code = commands.exec_process(
        ctx.root, container_id, command=command, process_file=process_file, tty=tty,
        console_socket=console_socket, detach=detach, pid_file=pid_file, env=env, cwd=cwd,
        user=user, additional_gids=additional_gids, cap=cap, no_new_privs=no_new_privs,
        preserve_fds=preserve_fds, cgroup_paths=cgroup_paths, ignore_paused=ignore_paused)
    click.get_current_context().exit(code)


@main_group.command()
@click.argument("container_id")
@pass_ctx
def state(ctx: Context, container_id):
    """Print the state of a container (OCI state JSON)."""
    from pyruntime import commands

    commands.state(ctx.root, container_id)


@main_group.command()
@click.option("--all", "-a", "all_processes", is_flag=True, help="Signal every process of the container.")
@click.argument("container_id")
@click.argument("signal", default="SIGTERM")
@pass_ctx
def kill(ctx: Context, container_id, signal, all_processes):
    """Send a signal (default SIGTERM) to the container's init process."""
    from pyruntime import commands

    commands.kill(ctx.root, container_id, signal, all_processes)


@main_group.command()
@click.option("--force", "-f", is_flag=True, help="Kill the container first if it is still running.")
@click.option("--regex", "-r", is_flag=True, help="CONTAINER_ID is a regular expression: delete "
                                                   "every container whose whole id matches (crun).")
@click.argument("container_id")
@pass_ctx
def delete(ctx: Context, container_id, force, regex):
    """Delete a stopped container and everything it holds."""
    from pyruntime import commands

    commands.delete(ctx.root, container_id, force, regex)


@main_group.command()
@click.argument("container_id")
@pass_ctx
def pause(ctx: Context, container_id):
    """Freeze every process of the container."""
    from pyruntime import lifecycle

    lifecycle.pause(ctx.root, container_id)


@main_group.command()
@click.argument("container_id")
@pass_ctx
def resume(ctx: Context, container_id):
    """Thaw a paused container."""
    from pyruntime import lifecycle

    lifecycle.resume(ctx.root, container_id)


@main_group.command()
@click.option("--resources", "-r", default=None, help="JSON file with OCI linux.resources ('-' for stdin); other flags are then ignored.")
@click.option("--memory", default=None, help="Memory limit (bytes, or with k/m/g), -1 for unlimited.")
@click.option("--memory-swap", default=None, help="Memory + swap limit, -1 for unlimited.")
@click.option("--memory-reservation", default=None, help="Memory soft limit.")
@click.option("--kernel-memory", default=None, hidden=True)
@click.option("--kernel-memory-tcp", default=None, hidden=True)
@click.option("--cpu-period", default=None, help="CPU CFS period (us).")
@click.option("--cpu-quota", default=None, help="CPU CFS quota (us) per period, -1 for unlimited.")
@click.option("--cpu-burst", default=None, help="CPU CFS burst (us).")
@click.option("--cpu-share", "--cpu-shares", "cpu_share", default=None, help="CPU shares (relative weight).")
@click.option("--cpu-rt-period", default=None, help="Realtime period (us).")
@click.option("--cpu-rt-runtime", default=None, help="Realtime runtime (us).")
@click.option("--cpu-idle", default=None, help="SCHED_IDLE for the cgroup (0 or 1).")
@click.option("--cpuset-cpus", default=None, help="CPUs to run on (e.g. 0-1).")
@click.option("--cpuset-mems", default=None, help="Memory nodes to use.")
@click.option("--pids-limit", default=None, help="Maximum number of processes.")
@click.option("--blkio-weight", default=None, help="Block IO weight (10-1000).")
@click.argument("container_id")
@pass_ctx
def update(ctx: Context, container_id, resources, **flags):
    """Change the resource limits of a running container."""
    import sys

    from pyruntime import lifecycle
    from pyruntime.cgroups import update_flags

    changes = update_flags.update_from_flags(resources=resources, stdin=sys.stdin, warn=log.warn, **flags)
    lifecycle.update(ctx.root, container_id, changes)


@main_group.command()
@click.option("--stats", is_flag=True, help="Print one stats event and exit.")
@click.option("--interval", default="5s", show_default=True,
              help="Time between stats events, as runc takes it (5s, 100ms, 1m30s; bare seconds too).")
@click.argument("container_id")
@pass_ctx
def events(ctx: Context, container_id, stats, interval):
    """Stream the container's stats and OOM events as JSON lines."""
    from pyruntime import lifecycle
    from pyruntime.cgroups import events as cgroup_events

    seconds = parse_duration(interval)
    manager = lifecycle.container_cgroup(ctx.root, container_id)
    if stats:
        click.echo(compact_json(cgroup_events.stats_event(manager, container_id)))
        return
    for event in cgroup_events.event_stream(manager, container_id, interval=seconds):
        click.echo(compact_json(event))


@main_group.command(context_settings={"ignore_unknown_options": True})
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def ps(ctx: Context, container_id, fmt, ps_args):
    """List the processes of a container (ps options may follow the id)."""
    from pyruntime import lifecycle
    from pyruntime.cgroups import processes as cgroup_processes

    processes = lifecycle.container_processes(ctx.root, container_id)
    if fmt == "json":
        click.echo(compact_json(cgroup_processes.ps_json(processes)))
    else:
        click.echo(cgroup_processes.ps_table(processes, ps_args), nl=False)


@main_group.command(name="list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="Print only the container ids.")
@pass_ctx
def list_command(ctx: Context, fmt, quiet):
    """List the containers."""
    from pyruntime import lifecycle

    containers = lifecycle.list_containers(ctx.root)
    if quiet:
        for c in containers:
            click.echo(c["id"])
    elif fmt == "json":
        click.echo(compact_json(containers))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(c["id"], str(c["pid"]), c["status"], c["bundle"], c["created"], c["owner"]) for c in containers]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


# The flags runc 1.1's checkpoint and restore share.
def _flag(name: str, help: str):
    return click.option(name, is_flag=True, help=help)


image_path_flag = click.option("--image-path", default="",
                               help="Directory of the criu images (default: ./checkpoint).")
work_path_flag = click.option("--work-path", default="", help="Directory for criu's work files and log.")
tcp_flag = _flag("--tcp-established", "Allow open TCP connections.")
unix_flag = _flag("--ext-unix-sk", "Allow external unix sockets.")
shell_job_flag = _flag("--shell-job", "Allow shell jobs.")
lazy_pages_flag = _flag("--lazy-pages", "Use userfaultfd to restore memory pages lazily.")
file_locks_flag = _flag("--file-locks", "Handle file locks, for safety.")
cgroups_mode_flag = click.option("--manage-cgroups-mode", default="",
                                 help="cgroups mode: soft (default), full or strict.")
empty_ns_flag = click.option("--empty-ns", multiple=True,
                             help="Create a namespace, but do not restore its properties (network).")
dedup_flag = _flag("--auto-dedup", "Enable auto deduplication of memory images.")


@main_group.command()
@image_path_flag
@work_path_flag
@click.option("--parent-path", default="", help="Previous criu images of a pre-dump (relative to --image-path).")
@click.option("--leave-running", is_flag=True, help="Leave the process running after checkpointing.")
@tcp_flag
@unix_flag
@shell_job_flag
@lazy_pages_flag
@click.option("--status-fd", type=int, default=-1, show_default=True,
              help="criu writes \\0 to this fd once lazy-pages is ready.")
@click.option("--page-server", default="", help="ADDRESS:PORT of the page server.")
@file_locks_flag
@click.option("--pre-dump", is_flag=True, help="Dump the container's memory only, and leave it running.")
@cgroups_mode_flag
@empty_ns_flag
@dedup_flag
@click.argument("container_id")
@pass_ctx
def checkpoint(ctx: Context, container_id, **flags):
    """Checkpoint a running container with criu."""
    from pyruntime import checkpoint as commands
    from pyruntime.criuopts import CriuOptions

    commands.checkpoint(ctx.root, container_id, CriuOptions(**flags), criu=ctx.criu)


@main_group.command()
@click.option("--console-socket", default=None, help="AF_UNIX socket that receives the pty master.")
@image_path_flag
@work_path_flag
@tcp_flag
@unix_flag
@shell_job_flag
@file_locks_flag
@cgroups_mode_flag
@bundle_option
@click.option("--detach", "-d", is_flag=True, help="Do not wait for the container's process.")
@click.option("--pid-file", default=None, help="Write the restored init's pid to this file.")
@click.option("--no-subreaper", is_flag=True, help="Do not become the subreaper of the container's processes.")
@click.option("--no-pivot", is_flag=True, help="Accepted: criu restores the root itself.")
@empty_ns_flag
@dedup_flag
@lazy_pages_flag
@click.option("--lsm-profile", default="", help="LSM profile for the restore, as TYPE:NAME.")
@click.option("--lsm-mount-context", default="", help="LSM mount context for the restore.")
@click.argument("container_id")
@pass_ctx
def restore(ctx: Context, container_id, console_socket, bundle, detach, pid_file, no_subreaper,
            no_pivot, **flags):
    """Restore a container from a checkpoint."""
    from pyruntime import checkpoint as commands
    from pyruntime.criuopts import CriuOptions

    code = commands.restore(ctx.root, container_id, bundle, CriuOptions(**flags), criu=ctx.criu,
                            console_socket=console_socket, pid_file=pid_file, detach=detach,
                            no_subreaper=no_subreaper, cgroup_manager=ctx.cgroup_manager)
    click.get_current_context().exit(code)


@main_group.command()
@bundle_option
@click.option("--rootless", is_flag=True, help="A config for running without root (user namespace).")
@click.option("--network", default=None,
              help="bridge[:NAME], slirp4netns, host, none or container:ID (bridge and slirp4netns "
                   "put the network hook in).")
@click.option("--publish", "-p", multiple=True,
              help="Publish a port: [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp|sctp] (bridge).")
def spec(bundle, rootless, network, publish):
    """Write a default config.json into the bundle."""
    from pyruntime import spec as specs

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise RuntimeUserError(f"{path} exists: remove it first")
    config = specs.default_spec(rootless=rootless)
    if network or publish:
        from pyruntime.network.spec import apply_network

        config = apply_network(config, network or "bridge", publish=publish)
    try:
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
    except OSError as e:
        raise RuntimeUserError(f"cannot write {path}: {e.strerror}") from None


@main_group.command()
@bundle_option
def validate(bundle):
    """Check a bundle's config.json without running anything."""
    from pyruntime import spec as specs

    specs.load_config(os.path.abspath(bundle))
    click.echo(f"{os.path.join(bundle, 'config.json')}: valid")


@main_group.command()
def features():
    """Print what this runtime supports (OCI features JSON)."""
    from pyruntime.features import features_document

    click.echo(json.dumps(features_document(), indent=2))


@main_group.group()
def network():
    """Host set-up for networking (the CNI plugin link, the default network, a multi-node
    cluster's routes)."""


cni_bin_option = click.option("--cni-bin-dir", default="/opt/cni/bin", show_default=True,
                              help="Where CNI runtimes look for plugins.")
net_config_option = click.option("--config-dir", default="/etc/pyruntime/net.d", show_default=True,
                                 help="pyruntime's network configuration directory.")


@network.command(name="install")
@cni_bin_option
@net_config_option
@click.option("--force", is_flag=True, help="Replace a different file where the plugin link goes.")
def network_install(cni_bin_dir, config_dir, force):
    """Link this installation's pyruntime-bridge into the CNI directory and write the default
    network's conflist (an existing one is kept)."""
    from pyruntime.network import admin

    for line in admin.install(cni_bin_dir, config_dir, force=force):
        click.echo(line)


@network.command(name="uninstall")
@cni_bin_option
@net_config_option
def network_uninstall(cni_bin_dir, config_dir):
    """Remove what `network install` made (a conflist changed since is kept)."""
    from pyruntime.network import admin

    for line in admin.uninstall(cni_bin_dir, config_dir):
        click.echo(line)


cluster_options = [
    click.option("--cluster", "cluster_file", required=True, help="The cluster file (docs/multinode.md)."),
    click.option("--node", "node_name", required=True, help="This node's name in the cluster file."),
    net_config_option,
]


@network.command(name="node-up")
@with_options(cluster_options)
@click.option("--ipam-data-dir", default="", help="dataDir of the node's IPAM leases in the conflist "
              "(default: the plugin's, /var/lib/cni/networks).")
@click.option("--force", is_flag=True, help="Replace a conflist that node-up did not write.")
@pass_ctx
def network_node_up(ctx: Context, cluster_file, node_name, config_dir, ipam_data_dir, force):
    """Route to the other nodes' pod subnets, forward, keep pod-to-pod traffic unmasqueraded and
    write this node's network conflist; re-running converges to the file."""
    from pyruntime.cluster import node

    node.up(cluster_file, node_name, config_dir, ctx.root, click.echo, data_dir=ipam_data_dir, force=force)


@network.command(name="node-down")
@with_options(cluster_options)
@pass_ctx
def network_node_down(ctx: Context, cluster_file, node_name, config_dir):
    """Remove what node-up made on this node."""
    from pyruntime.cluster import node

    node.down(cluster_file, node_name, config_dir, ctx.root, click.echo)


@main_group.group()
def service():
    """ClusterIP-style services: a virtual IP:port that NAT spreads over backends."""


firewall_option = click.option("--firewall", type=click.Choice(["auto", "iptables", "nftables"]),
                               default="auto", show_default=True,
                               help="Firewall backend (auto: $PYRUNTIME_CNI_FIREWALL, else the host's iptables).")


@service.command(name="add")
@click.argument("name")
@click.option("--vip", required=True, help="The service address, IP:PORT/PROTO (tcp, udp or sctp).")
@click.option("--backend", "backends", multiple=True, help="A backend IP:PORT (repeat for more).")
@firewall_option
def service_add(name, vip, backends, firewall):
    """Create service NAME, or replace its VIP and backends in one step."""
    from pyruntime.services import apply, spec

    apply.add(spec.parse(name, vip, backends), firewall)


@service.command(name="del")
@click.argument("name")
@firewall_option
def service_del(name, firewall):
    """Remove service NAME's chains and rules."""
    from pyruntime.services import apply

    apply.delete(name, firewall)


@service.command(name="list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@firewall_option
def service_list(fmt, firewall):
    """Print the services: name, VIP, backends."""
    from pyruntime.services import apply

    services = apply.list_services(firewall)
    if fmt == "json":
        click.echo(json.dumps([s.as_dict() for s in services], indent=2))
    else:
        click.echo(apply.table_text(services), nl=False)


def click_main() -> int:
    """Parse and run with click; click's own usage errors are reported here, everything else
    propagates to the entry point (pyruntime.fastpath.main)."""
    try:
        result = main_group.main(standalone_mode=False, prog_name="pyruntime")
    except click.exceptions.Abort:
        return 130
    except click.ClickException as e:
        e.show()
        log.write("error", e.format_message(), echo=False)
        return e.exit_code
    return result if isinstance(result, int) else 0
