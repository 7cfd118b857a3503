package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"egresscni/agent"
	"egresscni/api"
	"egresscni/internal/testkit"

	"egressgw"
)

var pluginBin string

// The plugin is tested as a runtime runs it: its binary, the CNI_* environment, the
// configuration with prevResult on stdin, the result or error JSON on stdout.
func TestMain(m *testing.M) {
	dir, remove := testkit.Build("egress-cni-test",
		testkit.Command{Name: "egress-cni", Package: "egresscni/cmd/egress-cni"})
	pluginBin = filepath.Join(dir, "egress-cni")
	code := m.Run()
	remove()
	os.Exit(code)
}

const prevResult = `{"cniVersion": "1.0.0",
 "interfaces": [{"name": "veth1234", "mac": "aa:bb:cc:dd:ee:01"}, {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/var/run/netns/p1"}],
 "ips": [{"interface": 1, "address": "10.0.0.5/24", "gateway": "10.0.0.1"}],
 "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}`

const cluster = `{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "cilium.io/v2", "kind": "CiliumEgressGatewayPolicy", "metadata": {"name": "web"},
  "spec": {"selectors": [{"podSelector": {"matchLabels": {"app": "web"}}}], "destinationCIDRs": ["0.0.0.0/0"],
           "egressGateway": {"nodeSelector": {"matchLabels": {"egress": "true"}}}}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gw", "labels": {"egress": "true"}},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}]}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker"},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}},
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
  "spec": {"nodeName": "worker"}, "status": {"phase": "Pending"}}
]}`

type env struct {
	socket, queue string
	agent         *agent.Agent
}

// newEnv is an agent that knows the cluster (synced) on a temp socket, and a DEL queue.
func newEnv(t *testing.T, start bool) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{socket: filepath.Join(dir, "agent.sock"), queue: filepath.Join(dir, "queue")}
	if start {
		e.start(t)
	}
	return e
}

func (e *env) start(t *testing.T) {
	t.Helper()
	engine, err := egressgw.NewEngine(egressgw.Config{LocalNode: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	e.agent = agent.New("worker", engine, agent.PlanOnly{})
	if _, err := e.agent.Objects([]byte(cluster), true); err != nil {
		t.Fatal(err)
	}
	listener, server, err := e.agent.Listen(e.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); listener.Close() })
}

func (e *env) conf(prev string) string {
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "pods", "type": "egress-cni", "agentSocket": %q, "delQueue": %q, "timeoutSeconds": 2`,
		e.socket, e.queue)
	if prev != "" {
		conf += `, "prevResult": ` + prev
	}
	return conf + "}"
}

// run runs the plugin; its exit code and stdout.
func run(t *testing.T, command, conf, args string) (int, string) {
	t.Helper()
	cmd := exec.Command(pluginBin)
	cmd.Env = []string{
		"CNI_COMMAND=" + command, "CNI_CONTAINERID=sandbox-1", "CNI_NETNS=/var/run/netns/p1",
		"CNI_IFNAME=eth0", "CNI_PATH=/usr/lib/cni", "CNI_ARGS=" + args,
	}
	cmd.Stdin = strings.NewReader(conf)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String()
}

const podArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_UID=u-1;K8S_POD_INFRA_CONTAINER_ID=sandbox-1"

type cniError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

func errorOf(t *testing.T, stdout string) cniError {
	t.Helper()
	var e cniError
	if err := json.Unmarshal([]byte(stdout), &e); err != nil || e.Code == 0 {
		t.Fatalf("not a CNI error: %q (%v)", stdout, err)
	}
	return e
}

// ADD hands the pod to the agent and prints the previous result unchanged; CHECK agrees;
// DEL removes it; VERSION names the spec versions.
func TestAddCheckDelPassTheResultThrough(t *testing.T) {
	e := newEnv(t, true)
	code, out := run(t, "ADD", e.conf(prevResult), podArgs)
	if code != 0 {
		t.Fatalf("ADD: exit %d: %s", code, out)
	}
	var got, want map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(prevResult), &want)
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("the result is not the previous one:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	st, _ := api.NewClient(e.socket, 0).Status()
	if st.Entries != 1 {
		t.Fatalf("after ADD the agent desires %d entries", st.Entries)
	}
	if code, out := run(t, "CHECK", e.conf(prevResult), podArgs); code != 0 {
		t.Fatalf("CHECK: exit %d: %s", code, out)
	}
	other := strings.Replace(prevResult, "10.0.0.5/24", "10.0.0.6/24", 1)
	if code, out := run(t, "CHECK", e.conf(other), podArgs); code == 0 || !strings.Contains(errorOf(t, out).Details, "not [10.0.0.6]") {
		t.Fatalf("CHECK of another address: exit %d: %s", code, out)
	}
	if code, out := run(t, "DEL", e.conf(prevResult), podArgs); code != 0 || out != "" {
		t.Fatalf("DEL: exit %d: %s", code, out)
	}
	if st, _ := api.NewClient(e.socket, 0).Status(); st.Entries != 0 {
		t.Fatalf("after DEL the agent desires %d entries", st.Entries)
	}
	code, out = run(t, "VERSION", e.conf(""), "")
	if code != 0 || !strings.Contains(out, `"1.0.0"`) {
		t.Fatalf("VERSION: exit %d: %s", code, out)
	}
}

// Errors carry the spec's codes: no agent → 11 (try again later) naming the socket; no
// prevResult → 7; a missing pod name in CNI_ARGS → 4.
func TestErrorsHaveTheSpecsCodes(t *testing.T) {
	down := newEnv(t, false)
	code, out := run(t, "ADD", down.conf(prevResult), podArgs)
	if e := errorOf(t, out); code == 0 || e.Code != 11 || !strings.Contains(e.Details, down.socket) {
		t.Fatalf("agent down: exit %d: %+v", code, e)
	}
	up := newEnv(t, true)
	code, out = run(t, "ADD", up.conf(""), podArgs)
	if e := errorOf(t, out); code == 0 || e.Code != 7 || !strings.Contains(e.Msg, "prevResult") {
		t.Fatalf("no prevResult: exit %d: %+v", code, e)
	}
	for _, conf := range []string{up.conf(prevResult), down.conf(prevResult)} {
		code, out = run(t, "ADD", conf, "K8S_POD_NAMESPACE=shop")
		if e := errorOf(t, out); code == 0 || e.Code != 4 || !strings.Contains(e.Details, "pod.name") {
			t.Fatalf("no pod name (agent up or down): exit %d: %+v", code, e)
		}
	}
	if code, out := run(t, "DEL", up.conf(prevResult), "NOT_A_KNOWN_ARG=1"); code != 0 {
		t.Fatalf("DEL with unreadable CNI_ARGS: exit %d: %s", code, out)
	}
	code, out = run(t, "ADD", "{not json", podArgs)
	if e := errorOf(t, out); code == 0 || e.Code != 6 {
		t.Fatalf("bad configuration: exit %d: %+v", code, e)
	}
}

// DEL never fails: with the agent down it is queued on disk, and replayed (the pod's entries
// removed) by the next call that reaches the agent.
func TestDelIsQueuedWhileTheAgentIsDown(t *testing.T) {
	e := newEnv(t, false)
	conf := e.conf(prevResult)
	if code, out := run(t, "DEL", conf, podArgs); code != 0 {
		t.Fatalf("DEL with the agent down: exit %d: %s", code, out)
	}
	queued, _ := filepath.Glob(filepath.Join(e.queue, "del-*.json"))
	if len(queued) != 1 {
		t.Fatalf("queued: %v", queued)
	}
	e.start(t)
	// The pod was programmed by an ADD the agent saw before it went away.
	if _, err := e.agent.Add(api.AddRequest{ContainerID: "sandbox-1", Pod: api.Pod{Namespace: "shop", Name: "web-1"}, IPs: []string{"10.0.0.5"}}); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(podArgs, "web-1", "web-2", 1)
	run(t, "DEL", conf, other) // any call that reaches the agent replays the queue first
	if queued, _ := filepath.Glob(filepath.Join(e.queue, "del-*.json")); len(queued) != 0 {
		t.Fatalf("still queued: %v", queued)
	}
	if st, _ := api.NewClient(e.socket, 0).Status(); st.Entries != 0 {
		t.Fatalf("the queued DEL did not remove the pod: %d entries", st.Entries)
	}
}
