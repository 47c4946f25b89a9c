//go:build tools

// Package tools names the commands canarylab's offline bundle builds from this
// scratch module, so that `go mod tidy` keeps their dependencies.  Never compiled.
package tools

import (
	_ "istio.io/istio/pilot/cmd/pilot-agent"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
