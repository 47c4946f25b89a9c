"""`canarylab up | provision | status | down | destroy`: the Vagrant lab from one entry point.

`up` runs `vagrant up --no-provision`, then playbooks/site.yml through
ansible-runner (live progress, phase timings), prints how long each phase took
and saves it to results/provision-<UTC timestamp>.json.  With container nodes
(`--nodes containers`, or `nodes: containers` in lab.yml) it first builds (or
finds cached) the offline bundle and the node image, and it records the nodes'
peak memory beside the phases.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from canarylab.doctor.facts import gather_host
from canarylab.doctor.labsize import load_lab_size
from canarylab.errors import CanarylabError
from canarylab.lab import nodes, provision, status, vagrant
from canarylab.paths import project_root, results_dir, state_dir
from canarylab.runner import LAB_INVENTORY, PlaybookError, lab_inventory, run_playbook

SITE_PLAYBOOK = "playbooks/site.yml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up",
        help="create and provision the lab: vagrant up, then playbooks/site.yml with timings",
        description="Start the lab VMs (`vagrant up --no-provision`), then provision them with "
        f"{SITE_PLAYBOOK} through ansible-runner. Prints how long each phase took and saves it to "
        "results/provision-<UTC timestamp>.json.",
    )
    up.add_argument(
        "--provision",
        action="store_true",
        help="only provision (run the site playbook against the running VMs), skip `vagrant up`",
    )
    up.add_argument(
        "--nodes",
        choices=nodes.NODE_KINDS,
        default=None,
        help="vms (lab.yml's default) or containers: privileged podman containers instead of VMs, "
        "for hosts without VT-x (Linux, as root; docs/lab.md)",
    )
    _inventory_option(up)
    _progress_option(up)
    up.set_defaults(func=_up)

    prov = sub.add_parser(
        "provision",
        help="provision the running lab again (same as `canarylab up --provision`)",
        description=f"Run {SITE_PLAYBOOK} against the running lab VMs (or the machines of "
        "--inventory), with timings.",
    )
    _inventory_option(prov)
    _progress_option(prov)
    prov.set_defaults(func=_up, provision=True, nodes=None)

    st = sub.add_parser(
        "status",
        help="show the lab: VMs, nodes, pods of the app, mesh and monitoring, URLs, Grafana password file",
        description="Show the lab's VMs (vagrant status), its nodes and pods (kubectl through "
        ".canarylab/kubeconfig), the URLs of Grafana, Prometheus and the app, and where the Grafana "
        "admin password is kept. Exits non-zero when there is no running lab.",
    )
    st.set_defaults(func=_status)

    down = sub.add_parser("down", help="stop the lab VMs (vagrant halt); `canarylab up` starts them again")
    down.set_defaults(func=_down)

    destroy = sub.add_parser(
        "destroy",
        help="delete the lab VMs (vagrant destroy -f) and the lab's stale kubeconfig/endpoints",
        description="Delete the lab VMs for good. Asks for confirmation unless --yes is given.",
    )
    destroy.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    destroy.set_defaults(func=_destroy)


def _inventory_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory",
        "-i",
        metavar="PATH",
        type=Path,
        default=None,
        help=f"the inventory to provision (default: {LAB_INVENTORY}, written by `vagrant up`), "
        "e.g. a copy of inventory/examples/servers.yml",
    )


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="do not show Ansible's progress (the full output is always in the run's log file)",
    )


# --- up / provision -----------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    root = project_root()
    # an inventory given on the command line is checked before anything runs
    given = lab_inventory(root, args.inventory) if args.inventory is not None else None
    if given is not None and not args.provision:
        raise CanarylabError(
            "`canarylab up --inventory` would start the Vagrant VMs and then provision other hosts",
            "for hosts of your own: `canarylab provision --inventory PATH`; for the VMs: no --inventory",
        )
    env = _lab_environ(args.nodes)
    # Hosts of the user's own inventory are not the Vagrantfile's machines: no lab size, no Vagrant.
    lab = load_lab_size(root, env) if given is None else None
    containers = lab is not None and lab.nodes == "containers"
    started = provision.utc_now()
    clock = time.monotonic()  # the total includes the host checks below
    host = gather_host(root)
    record = provision.new_record(host, lab, started, inventory=given)
    if containers and not args.provision:
        # The nodes have no route out: everything they run comes from the bundle and the node image.
        _timed(record, "offline bundle", "build", lambda: _bundle_build(root))
        _timed(
            record,
            "node image",
            "build",
            lambda: print(f"canarylab: node image {nodes.build_node_image(root)}"),
        )
    if not args.provision:
        assert lab is not None  # given is None here
        vagrant.require_vagrant()
        if not containers:
            vagrant.require_provider(host.providers, lab)
        print(f"canarylab: vagrant up --no-provision ({lab.describe()}, provider {lab.provider})", flush=True)
        vagrant_started = time.monotonic()
        vagrant.run_checked(["up", "--no-provision"], root, "starting the machines", env=env)
        record.add_phase("vagrant up", time.monotonic() - vagrant_started, "vagrant")
    # CANARYLAB_INVENTORY moves the inventory the Vagrantfile writes (tests do): read it there.
    written = env.get("CANARYLAB_INVENTORY", "").strip()
    inventory = given or lab_inventory(root, Path(written) if written and given is None else None)
    shown = inventory.relative_to(root) if inventory.is_relative_to(root) else inventory
    print(f"canarylab: provisioning with {SITE_PLAYBOOK} (inventory {shown})", flush=True)
    # Container nodes: their memory is watched while the playbook runs (the figure users size by).
    watch = nodes.MemoryWatch.of(m.name for m in lab.machines) if containers and lab is not None else None
    with watch if watch is not None else contextlib.nullcontext():
        result = run_playbook(
            SITE_PLAYBOOK,
            inventory=inventory,
            label="site",
            show_progress=args.progress,
            check=False,
            root=root,
        )
    if watch is not None:
        record.node_memory_peak_mb = dict(watch.peak_mb)
    record.add_playbook(result)
    record.total_seconds = round(time.monotonic() - clock, 3)
    path = provision.write_record(record, results_dir(root), started)
    print("\nprovisioning phases:")
    print(provision.render_phases(record))
    if watch is not None:
        print(f"peak memory of the nodes (working set, sampled every {watch.interval:.0f} s):")
        print(watch.render())
    print(f"saved {path.relative_to(root) if path.is_relative_to(root) else path}")
    if not result.ok:
        raise PlaybookError(result)
    print("the lab is up: `canarylab status` shows its nodes, pods and URLs")
    return 0


def _lab_environ(kind: str | None) -> dict[str, str]:
    """The environment for Vagrant: --nodes, when given, wins over lab.yml (CANARYLAB_NODES)."""
    env = dict(os.environ)
    if kind is not None:
        env["CANARYLAB_NODES"] = kind
    return env


def _timed(record: provision.ProvisionRecord, name: str, kind: str, step: Callable[[], object]) -> None:
    began = time.monotonic()
    step()
    record.add_phase(name, time.monotonic() - began, kind)


def _bundle_build(root: Path, env: Mapping[str, str] | None = None) -> None:
    """`canarylab bundle build`: a no-op in seconds when cached, about 22 min cold (docs/bundle.md)."""
    print("canarylab: the offline bundle (canarylab bundle build; cached after the first run)", flush=True)
    code = subprocess.run(
        [sys.executable, "-m", "canarylab", "bundle", "build"], cwd=root, env=env, check=False
    )
    if code.returncode != 0:
        raise CanarylabError(
            f"`canarylab bundle build` failed (exit {code.returncode})",
            "read its output above; docs/bundle.md says what each item needs",
        )


# --- status ----------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    root = project_root()
    machines = vagrant.machines(root)
    created = [m for m in machines if m.created]
    if not created:
        raise CanarylabError("no lab here: Vagrant has no VMs for this project", "run `canarylab up`")
    print("VMs (vagrant status):")
    for m in machines:
        print(f"  {m.name:<20} {m.state:<12} {m.provider}")
    running = [m for m in machines if m.running]
    code = 0 if len(running) == len(machines) else 1
    if not running:
        raise CanarylabError("the lab's VMs are not running", "run `canarylab up` to start them")

    view = status.cluster_view(root)
    if view is None:
        print(f"\nno {state_dir(root) / status.KUBECONFIG}: the cluster was not provisioned yet")
        print("  -> run `canarylab up --provision`")
        code = 1
    else:
        for section in view.sections:
            print(f"\n$ {section.title}")
            print(section.text if section.text else "(nothing)")
        if not view.reachable:
            print(f"  -> the API server did not answer through {view.kubeconfig}; `canarylab up --provision`")
            code = 1

    ends = status.endpoints(root)
    print(
        "\nURLs:"
        if ends.written_by_lab
        else f"\nURLs (configured in {ends.source}; the lab has not confirmed them):"
    )
    for name, url in ends.urls.items():
        print(f"  {name:<11} {url}")
    if not ends.written_by_lab:
        print(f"  ({state_dir(root) / status.ENDPOINTS} is written when provisioning finishes)")
    password = state_dir(root) / status.GRAFANA_PASSWORD_FILE
    where = "" if password.is_file() else " (not created yet: `canarylab up --provision` creates it)"
    print(f"\nGrafana: user admin, password in {password}{where}")
    return code


# --- down / destroy ------------------------------------------------------------------------


def _down(args: argparse.Namespace) -> int:
    root = project_root()
    vagrant.run_checked(["halt"], root, "stopping the VMs")
    print("the lab is stopped: `canarylab up` starts it again")
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise CanarylabError("refusing to destroy the lab without confirmation", "add --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _destroy(args: argparse.Namespace) -> int:
    root = project_root()
    vagrant.require_vagrant()
    if not args.yes and not _confirm("Delete all lab VMs for good?"):
        print("nothing deleted")
        return 1
    vagrant.run_checked(["destroy", "-f"], root, "deleting the VMs")
    for name in (status.KUBECONFIG, status.ENDPOINTS):
        stale = state_dir(root) / name
        if stale.is_file():
            stale.unlink()
            print(f"removed stale {stale}")
    print("the lab is gone: `canarylab up` builds a new one")
    return 0
