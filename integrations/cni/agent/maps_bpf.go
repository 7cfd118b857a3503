//go:build egressgw_bpf

package agent

import (
	"fmt"

	"egressgw"
)

// KernelMaps programs the node's pinned maps.
type KernelMaps struct {
	Maps *egressgw.Maps
	Dir  string
}

// OpenKernelMaps opens (creating when missing, maxEntries each) the maps pinned in dir, of
// layout (the engine's: its Cilium version's Layout() unless it overrides it), and
// makes what they hold the engine's programmed baseline: a restarted agent writes nothing
// until its engine's desired state differs from what the maps hold.
func OpenKernelMaps(dir string, e *egressgw.Engine, layout egressgw.Layout, maxEntries uint32) (*KernelMaps, error) {
	m, err := egressgw.CreateMaps(dir, layout, maxEntries)
	if err != nil {
		return nil, err
	}
	if err := e.AdoptMaps(m); err != nil {
		m.Close()
		return nil, err
	}
	return &KernelMaps{Maps: m, Dir: dir}, nil
}

// Program writes e's plan to the maps and acknowledges what was written.
func (k *KernelMaps) Program(e *egressgw.Engine) (int, error) { return k.Maps.Program(e) }

// Describe names the pin directory.
func (k *KernelMaps) Describe() string { return fmt.Sprintf("pinned in %s", k.Dir) }
