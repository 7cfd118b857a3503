package plugin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"egresscni/api"
	"egresscni/internal/testkit"
)

// netns makes a network namespace for one test (root only: skipped without, a failure under
// EGRESS_REQUIRE_BPF=1 — CI runs every kernel test).
func netns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("egw-cni-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		testkit.NeedPrivilege(t, fmt.Sprintf("ip netns add: %v: %s (needs root)", err, strings.TrimSpace(string(out))))
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/var/run/netns/" + name
}

// A pod's network made the way a container runtime makes it: libcni runs the list
// ptp (host-local IPAM) → egress-cni in a real network namespace. The pod's address from
// host-local reaches the agent and is programmed during ADD; CHECK agrees; DEL removes it.
func TestLibcniRunsTheChainInANetworkNamespace(t *testing.T) {
	if _, err := os.Stat("/usr/lib/cni/ptp"); err != nil {
		t.Fatalf("the reference plugins (Debian's containernetworking-plugins) are not installed: %v", err)
	}
	ns := netns(t)
	e := newEnv(t, true)
	dataDir := t.TempDir()
	conflist := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "egw-test", "plugins": [
		{"type": "ptp", "ipMasq": false, "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": %q}},
		{"type": "egress-cni", "agentSocket": %q, "delQueue": %q}
	]}`, dataDir, e.socket, e.queue)
	list, err := libcni.ConfListFromBytes([]byte(conflist))
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfig([]string{filepath.Dir(pluginBin), "/usr/lib/cni"}, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: "sandbox-libcni",
		NetNS:       ns,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", "shop"},
			{"K8S_POD_NAME", "web-1"},
			{"K8S_POD_UID", "u-1"},
		},
	}
	ctx := context.Background()
	result, err := cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	t.Cleanup(func() { _ = cni.DelNetworkList(ctx, list, rt) })
	res, err := types100.NewResultFromResult(result)
	if err != nil || len(res.IPs) != 1 {
		t.Fatalf("result: %+v, %v", result, err)
	}
	ip := res.IPs[0].Address.IP.String()
	if !strings.HasPrefix(ip, "10.99.0.") {
		t.Fatalf("host-local gave %s", ip)
	}
	entries, err := e.agent.Engine().Entries()
	if err != nil || len(entries) != 1 || entries[0].Source.String() != ip {
		t.Fatalf("the agent's entries after ADD: %+v, %v (want one from %s)", entries, err, ip)
	}
	if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if st, _ := api.NewClient(e.socket, 0).Status(); st.Entries != 0 {
		t.Fatalf("after DEL the agent desires %d entries", st.Entries)
	}
}
