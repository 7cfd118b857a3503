package egressgw

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// examplesDir is the example snapshots: $EGRESS_EXAMPLES, else the repository's.
func examplesDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("EGRESS_EXAMPLES")
	if dir == "" {
		dir = filepath.Join("..", "..", "examples", "snapshots")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the example snapshots: %v (set EGRESS_EXAMPLES)", err)
	}
	return dir
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedEngine is the seed's group-of-egress-nodes cluster, computed for its localNode.
func seedEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := FromSnapshot(readFile(t, filepath.Join(examplesDir(t), "seed-gateway-group.yaml")), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type netipAddr = netip.Addr

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
