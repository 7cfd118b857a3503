//go:build egressgw_bpf

package main

import (
	"flag"
	"fmt"

	"egresscni/agent"

	"egressgw"
)

type mapsFlags struct {
	pinDir     *string
	maxEntries *uint
}

func addMapsFlags() mapsFlags {
	return mapsFlags{
		pinDir:     flag.String("pin-dir", "/sys/fs/bpf/tc/globals", "the bpffs directory of the node's pinned egress maps (created when missing); \"none\": write no map"),
		maxEntries: flag.Uint("max-entries", 16384, "each map's capacity when the agent creates it"),
	}
}

func (f mapsFlags) open(e *egressgw.Engine, cfg egressgw.Config) (agent.Programmer, func(), error) {
	if *f.pinDir == "none" {
		return agent.PlanOnly{}, func() {}, nil
	}
	if *f.maxEntries == 0 || *f.maxEntries > 1<<32-1 {
		return nil, nil, fmt.Errorf("--max-entries: Invalid value: %d: from 1 to 4294967295", *f.maxEntries)
	}
	layout := cfg.Layout
	if layout == egressgw.LayoutVersion {
		var err error
		if layout, err = cfg.CiliumVersion.Layout(); err != nil {
			return nil, nil, err
		}
	}
	m, err := agent.OpenKernelMaps(*f.pinDir, e, layout, uint32(*f.maxEntries))
	if err != nil {
		return nil, nil, fmt.Errorf("--pin-dir: %s: %w", *f.pinDir, err)
	}
	return m, func() { m.Maps.Close() }, nil
}
