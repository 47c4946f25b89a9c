"""The Vagrant lab from the host: vagrant.py drives Vagrant, provision.py records how long
provisioning took, status.py says what runs and where.  The CLI is canarylab/commands/lab.py."""
