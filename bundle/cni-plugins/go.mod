// Scratch module of canarylab's offline bundle: the flannel CNI plugin.
// github.com/flannel-io/cni-plugin is refused by the Go module proxy here, and
// Debian 12's containernetworking-plugins 1.1.1 carries no flannel plugin; the
// plugin flannel-io/cni-plugin was forked from is containernetworking/plugins'
// plugins/meta/flannel, last released there in v0.9.1.
module canarylab.invalid/bundle/cni-plugins

go 1.14

require github.com/containernetworking/plugins v0.9.1
