"""The container lab's offline bundle: Kubernetes, etcd, CoreDNS, pause, flannel,
its CNI plugin, MetalLB and helm, built from reachable sources only (the Go
module proxy and Debian's packages), plus their container images as archives
that ``ctr -n k8s.io images import`` loads, MetalLB's Helm chart, the wheelhouse
of the Python kubernetes client for the nodes' Python (from PyPI), and a
manifest with every sha256.

Why a Python command (``canarylab bundle build``) and not a shell script: the
parts that must be right are bookkeeping — a cache key per item from its pinned
version, its committed scratch module and toolchain; dependencies (an image
needs its binaries' hashes); a manifest that is verified before it is trusted —
and that is testable with a fake builder in milliseconds.  The real work stays
the plain tools (``nice -n 19 go build``, ``gcc``, ``podman build/save``),
each one subprocess call in :mod:`canarylab.bundle.builders`.

- :mod:`.items`     what is built, from the pins and the scratch modules in ``bundle/``;
- :mod:`.cache`     the per-item cache under ``$CANARYLAB_CACHE/bundle`` and its keys;
- :mod:`.manifest`  ``manifest.json``, written and verified (a changed file is refused);
- :mod:`.builders`  the real builders (Go, C, podman, helm, pip);
- :mod:`.wheels`    the wheelhouse's target options and its hash lock;
- :mod:`.run`       the order, the progress lines and the errors.

See docs/bundle.md.
"""

from __future__ import annotations
