//go:build tools

// Package tools names the commands canarylab's offline bundle builds from this
// scratch module, so that `go mod tidy` keeps their dependencies.  Never compiled.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
)
