//go:build egressgw_bpf

// Package e2e runs the two commands as a node runs them: egress-agent as its own process on a
// private bpffs, the egress-cni plugin called by libcni (as a container runtime calls it) in a
// real network namespace after the reference ptp plugin, the kernel map read back after each
// step — including the agent killed (SIGKILL) while pods come and go.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"egresscni/api"
	"egresscni/internal/testkit"

	"egressgw"
)

var binDir string

func TestMain(m *testing.M) {
	dir, remove := testkit.Build("egress-e2e",
		testkit.Command{Name: "egress-agent", Package: "egresscni/cmd/egress-agent", Tags: "egressgw_bpf"},
		testkit.Command{Name: "egress-cni", Package: "egresscni/cmd/egress-cni"})
	binDir = dir
	code := m.Run()
	remove()
	os.Exit(code)
}

// privileged stops t when err says a privilege is missing (testkit.NeedPrivilege).
func privileged(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		testkit.NeedPrivilege(t, fmt.Sprintf("%s: %v (needs root)", what, err))
	}
}

type node struct {
	dir, pins, socket, queue string
	agent                    *exec.Cmd
	log                      *os.File
}

func newNode(t *testing.T) *node {
	t.Helper()
	dir := t.TempDir()
	n := &node{dir: dir, pins: filepath.Join(dir, "bpf"), socket: filepath.Join(dir, "agent.sock"), queue: filepath.Join(dir, "queue")}
	if err := os.Mkdir(n.pins, 0o700); err != nil {
		t.Fatal(err)
	}
	privileged(t, "mounting a bpffs", syscall.Mount("bpf", n.pins, "bpf", 0, "mode=0700"))
	t.Cleanup(func() { _ = syscall.Unmount(n.pins, syscall.MNT_DETACH) })
	devices := filepath.Join(dir, "devices.json")
	if err := os.WriteFile(devices, []byte(`[{"name": "eth0", "index": 2, "addresses": ["192.168.1.2/24"], "defaultRoute": true}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs egress-agent as its own process and waits for its socket.
func (n *node) start(t *testing.T) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(n.dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	n.log = log
	n.agent = exec.Command(filepath.Join(binDir, "egress-agent"), "--node", "worker", "--pin-dir", n.pins,
		"--max-entries", "1024", "--socket", n.socket, "--del-queue", n.queue,
		"--state", filepath.Join(n.dir, "state.json"), "--devices", filepath.Join(n.dir, "devices.json"))
	n.agent.Stdout, n.agent.Stderr = log, log
	if err := n.agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.kill() })
	c := api.NewClient(n.socket, time.Second)
	for i := 0; i < 200; i++ {
		if _, err := c.Status(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	body, _ := os.ReadFile(filepath.Join(n.dir, "agent.log"))
	t.Fatalf("egress-agent did not come up:\n%s", body)
}

// kill is a crash: SIGKILL, no cleanup.
func (n *node) kill() {
	if n.agent != nil && n.agent.Process != nil {
		_ = n.agent.Process.Kill()
		_, _ = n.agent.Process.Wait()
		n.agent = nil
	}
	if n.log != nil {
		n.log.Close()
		n.log = nil
	}
}

// live is the kernel map's sources, read by a process of its own (the test), not the agent.
func (n *node) live(t *testing.T) []string {
	t.Helper()
	m, err := egressgw.OpenMaps(n.pins, legacy(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	entries, err := m.Dump()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Source.String())
	}
	return out
}

const cluster = `{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "cilium.io/v2", "kind": "CiliumEgressGatewayPolicy", "metadata": {"name": "web"},
  "spec": {"selectors": [{"podSelector": {"matchLabels": {"app": "web"}}}], "destinationCIDRs": ["0.0.0.0/0"],
           "egressGateway": {"nodeSelector": {"matchLabels": {"egress": "true"}}}}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gw", "labels": {"egress": "true"}},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}]}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker"},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}},
 %s
]}`

func pod(name, uid string) string {
	return fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": %q, "namespace": "shop", "uid": %q,
		"labels": {"app": "web"}}, "spec": {"nodeName": "worker"}, "status": {"phase": "Pending"}}`, name, uid)
}

// A pod made by libcni (ptp, host-local, egress-cni) has its kernel entry when ADD returns;
// a crashed agent restarted writes nothing for the unchanged cluster; a DEL made while the
// agent is down is queued and replayed when it is back, removing the entry.
func TestTheCommandsOnANode(t *testing.T) {
	if _, err := os.Stat("/usr/lib/cni/ptp"); err != nil {
		t.Fatalf("the reference plugins are not installed: %v", err)
	}
	n := newNode(t)
	// Each pod in its own network namespace, as a runtime makes them.
	for _, name := range []string{"web-1", "web-2"} {
		ns := fmt.Sprintf("egw-e2e-%d-%s", os.Getpid(), name)
		out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
		privileged(t, "ip netns add: "+strings.TrimSpace(string(out)), err)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	n.start(t)
	client := api.NewClient(n.socket, 5*time.Second)
	objects := fmt.Sprintf(cluster, pod("web-1", "u-1")+", "+pod("web-2", "u-2"))
	if _, err := client.Objects([]byte(objects)); err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes([]byte(fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "egw-e2e", "plugins": [
		{"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.98.0.0/24", "dataDir": %q}},
		{"type": "egress-cni", "agentSocket": %q, "delQueue": %q, "timeoutSeconds": 2}]}`,
		filepath.Join(n.dir, "ipam"), n.socket, n.queue)))
	if err != nil {
		t.Fatal(err)
	}
	runtime := libcni.NewCNIConfig([]string{binDir, "/usr/lib/cni"}, nil)
	sandbox := func(name, uid string) *libcni.RuntimeConf {
		netns := fmt.Sprintf("/var/run/netns/egw-e2e-%d-%s", os.Getpid(), name)
		return &libcni.RuntimeConf{ContainerID: "sandbox-" + name, NetNS: netns, IfName: "eth0",
			Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "shop"}, {"K8S_POD_NAME", name}, {"K8S_POD_UID", uid}}}
	}
	ctx := context.Background()
	// Before the first full list: ADD is "try again later" (11).
	if _, err := runtime.AddNetworkList(ctx, list, sandbox("web-1", "u-1")); err == nil || !strings.Contains(err.Error(), "try again later") {
		t.Fatalf("ADD before sync: %v", err)
	}
	_ = runtime.DelNetworkList(ctx, list, sandbox("web-1", "u-1")) // the runtime cleans up
	if _, err := client.Sync([]byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	ips := map[string]string{}
	for _, p := range [][2]string{{"web-1", "u-1"}, {"web-2", "u-2"}} {
		result, err := runtime.AddNetworkList(ctx, list, sandbox(p[0], p[1]))
		if err != nil {
			t.Fatalf("ADD %s: %v", p[0], err)
		}
		res, err := types100.NewResultFromResult(result)
		if err != nil {
			t.Fatal(err)
		}
		ips[p[0]] = res.IPs[0].Address.IP.String()
		if live := n.live(t); !contains(live, ips[p[0]]) {
			t.Fatalf("after ADD of %s (%s) the kernel map holds %v", p[0], ips[p[0]], live)
		}
	}
	// A crash, and the agent back: the maps are adopted, the unchanged cluster writes nothing.
	n.kill()
	n.start(t)
	withIPs := fmt.Sprintf(cluster, strings.Replace(pod("web-1", "u-1"), `"status": {"phase": "Pending"}`,
		fmt.Sprintf(`"status": {"phase": "Running", "podIPs": [{"ip": %q}]}`, ips["web-1"]), 1)+", "+
		strings.Replace(pod("web-2", "u-2"), `"status": {"phase": "Pending"}`,
			fmt.Sprintf(`"status": {"phase": "Running", "podIPs": [{"ip": %q}]}`, ips["web-2"]), 1))
	if applied, err := client.Sync([]byte(withIPs)); err != nil || applied.Programmed != 0 {
		t.Fatalf("the restarted agent's first sync wrote %d operations (want 0): %v", applied.Programmed, err)
	}
	if live := n.live(t); len(live) != 2 {
		t.Fatalf("after the restart the kernel map holds %v", live)
	}
	// The agent down: DEL still succeeds (queued); back, the DEL is replayed at start.
	n.kill()
	if err := runtime.DelNetworkList(ctx, list, sandbox("web-2", "u-2")); err != nil {
		t.Fatalf("DEL with the agent down: %v", err)
	}
	if queued, _ := filepath.Glob(filepath.Join(n.queue, "del-*.json")); len(queued) != 1 {
		t.Fatalf("queued: %v", queued)
	}
	n.start(t)
	if _, err := client.Sync([]byte(withIPs)); err != nil {
		t.Fatal(err)
	}
	if live := n.live(t); len(live) != 1 || live[0] != ips["web-1"] {
		t.Fatalf("after the queued DEL's replay the kernel map holds %v (want only %s)", live, ips["web-1"])
	}
	if queued, _ := filepath.Glob(filepath.Join(n.queue, "del-*.json")); len(queued) != 0 {
		t.Fatalf("still queued: %v", queued)
	}
	if err := runtime.DelNetworkList(ctx, list, sandbox("web-1", "u-1")); err != nil {
		t.Fatal(err)
	}
	if live := n.live(t); len(live) != 0 {
		t.Fatalf("after the last DEL the kernel map holds %v", live)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// legacy is Cilium 1.18's layout, as the library says.
func legacy(t *testing.T) egressgw.Layout {
	t.Helper()
	layout, err := egressgw.CiliumV1_18.Layout()
	if err != nil {
		t.Fatal(err)
	}
	return layout
}
