package egressgw

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// exampleTags are the build tags the example is built with: this test binary's
// (maps_test.go sets egressgw_bpf, whose library needs the kernel libraries to link).
var exampleTags = ""

// examples/cni-add builds and prints the new pod's map operations and entries.
func TestTheCNIAddExampleRuns(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "cni-add")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-tags", exampleTags, "-o", bin, "./examples/cni-add")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/cni-add: %v\n%s", err, out)
	}
	seed := filepath.Join(examplesDir(t), "seed-gateway-group.yaml")
	out, err := exec.Command(bin, "-f", seed, "-uid", "7d0c6f3e-0000-4000-8000-000000000001",
		"-label", "app=nginx", "-ip", "172.22.48.77", "-ip", "fd00::4d", "-pod-node", "172.22.48.48").CombinedOutput()
	if err != nil {
		t.Fatalf("cni-add: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	// The seed's policy names 0.0.0.0/0 and ::/0: one upsert in each map, and their entries.
	want := []string{
		"2 map operations for pod 7d0c6f3e-0000-4000-8000-000000000001:",
		"upsert cilium_egress_gw_policy_v4 key 20000000ac16304d00000000 value ac163177ac163177",
		"upsert cilium_egress_gw_policy_v6 key 80000000fd00000000000000000000000000004d",
		"entry 172.22.48.77 -> 0.0.0.0/0: egress IP 172.22.49.119, gateway 172.22.49.119, ifindex 0",
		"entry fd00::4d -> ::/0: ",
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out)
	}
	for i, prefix := range want {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d: %q, want it to begin %q", i, lines[i], prefix)
		}
	}
	// Bad input: a clear message naming what is wrong, status 1.
	cmd := exec.Command(bin, "-f", seed, "-uid", "u", "-ip", "172.22.48.78", "-label", "app=nginx", "-node", "nope")
	out, err = cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), "local_node") {
		t.Fatalf("unknown node: %v\n%s", err, out)
	}
}
