#!/bin/sh
# canarylab container node preparation, before containerd and kubelet start.
# Everything here stands in for what a VM's own kernel and boot provide.
set -eu

# kubelet and containerd need shared mount propagation (podman's root is private).
mount --make-rshared /

# kubelet sets vm.overcommit_memory, kernel.panic and kernel.panic_on_oops,
# which are not namespaced: in a container they are the host's.  Present the
# values it wants, read-only, so it leaves the host alone.
mkdir -p /run/canarylab-sysctl
for setting in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
  name=${setting%%=*}
  file=/run/canarylab-sysctl/$(echo "$name" | tr / _)
  echo "${setting#*=}" >"$file"
  mount --bind -o ro "$file" "/proc/sys/$name" 2>/dev/null || mount --bind "$file" "/proc/sys/$name"
done

# Namespaced per container: routing and bridged traffic through iptables.
echo 1 >/proc/sys/net/ipv4/ip_forward
echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
echo 1 >/proc/sys/net/bridge/bridge-nf-call-ip6tables 2>/dev/null || true

# The lab network is internal: no default route.  Host-network clients (the API
# server calling MetalLB's and Istio's webhooks) reach ClusterIPs only through
# a route to the Service network; kube-proxy's rules then take over.
ip route replace "${CANARYLAB_SERVICE_CIDR:-10.96.0.0/12}" dev "${CANARYLAB_NODE_IFACE:-eth0}"
