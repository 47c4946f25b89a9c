"""`canarylab doctor`: check the host before anything starts.

model.py holds the Check type, checks.py the pure checks, containers.py those of
container nodes (``nodes: containers``), facts.py gathers the real inputs on this host,
box.py asks the Vagrantfile what it resolved (nodes, box, provider, machines), labsize.py
reads the lab size and the kind of node from that answer, and run.py picks the checks
for a target.
"""

from canarylab.doctor.model import Check, failed
from canarylab.doctor.run import run_doctor
from canarylab.experiment.targets.base import TARGETS

__all__ = ["TARGETS", "Check", "failed", "run_doctor"]
