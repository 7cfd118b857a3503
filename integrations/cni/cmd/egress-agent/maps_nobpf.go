//go:build !egressgw_bpf

package main

import (
	"flag"
	"fmt"

	"egresscni/agent"

	"egressgw"
)

type mapsFlags struct{ pinDir *string }

func addMapsFlags() mapsFlags {
	return mapsFlags{pinDir: flag.String("pin-dir", "none", "only \"none\" in this build (built without -tags egressgw_bpf: no kernel maps)")}
}

func (f mapsFlags) open(_ *egressgw.Engine, _ egressgw.Config) (agent.Programmer, func(), error) {
	if *f.pinDir != "none" {
		return nil, nil, fmt.Errorf("--pin-dir: %q: this egress-agent is built without kernel maps (-tags egressgw_bpf): only \"none\"", *f.pinDir)
	}
	return agent.PlanOnly{}, func() {}, nil
}
