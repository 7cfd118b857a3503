package agent

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"egresscni/api"

	"egressgw"
)

// recorder acknowledges plans like PlanOnly and keeps every operation it was given.
type recorder struct {
	mu  sync.Mutex
	ops []egressgw.PlanOp
}

func (r *recorder) Program(e *egressgw.Engine) (int, error) {
	plan, err := e.TakePlan()
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.ops = append(r.ops, plan.Ops...)
	r.mu.Unlock()
	return plan.Len(), e.Ack(plan, plan.Len())
}

func (r *recorder) Describe() string { return "recorded" }

// source is an IPv4 operation's source address (the LPM key: prefix length, source,
// destination).
func source(op egressgw.PlanOp) string {
	return netip.AddrFrom4(*(*[4]byte)(op.Key[4:8])).String()
}

func (r *recorder) take() []egressgw.PlanOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.ops
	r.ops = nil
	return out
}

const cluster = `{"apiVersion": "v1", "kind": "List", "items": [
 {"apiVersion": "cilium.io/v2", "kind": "CiliumEgressGatewayPolicy", "metadata": {"name": "web"},
  "spec": {"selectors": [{"podSelector": {"matchLabels": {"app": "web"}}}],
           "destinationCIDRs": ["0.0.0.0/0"],
           "egressGateway": {"nodeSelector": {"matchLabels": {"egress": "true"}}, "egressIP": "192.168.1.1"}}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gw", "labels": {"egress": "true"}},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.1"}]}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker"},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}},
 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"tier": "web"}}},
 {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"}},
  "spec": {"nodeName": "worker"}, "status": {"phase": "Pending"}}
]}`

func podObject(uid, phase, ip string) string {
	status := fmt.Sprintf(`{"phase": %q}`, phase)
	if ip != "" {
		status = fmt.Sprintf(`{"phase": %q, "podIPs": [{"ip": %q}]}`, phase, ip)
	}
	return fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": %q,
		"labels": {"app": "web"}}, "spec": {"nodeName": "worker"}, "status": %s}`, uid, status)
}

// newEngine is an engine for node in selection mode, closed when the test ends.
func newEngine(t *testing.T, node string, selection egressgw.Selection) *egressgw.Engine {
	t.Helper()
	e, err := egressgw.NewEngine(egressgw.Config{LocalNode: node, Selection: selection})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func newAgent(t *testing.T) (*Agent, *recorder) {
	t.Helper()
	e := newEngine(t, "worker", egressgw.SelectionCilium)
	r := &recorder{}
	return New("worker", e, r), r
}

func status(err error) int {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return apiErr.Status
	}
	return 0
}

var add = api.AddRequest{ContainerID: "c1", IfName: "eth0", Pod: api.Pod{Namespace: "shop", Name: "web-1", UID: "u-1"}, IPs: []string{"10.0.0.5/24"}}

// ADD programs the pod's entries before it answers; before the first full list, or for a pod
// whose object has not arrived, it says try again later; bad input names its field.
func TestAddProgramsThePodBeforeAnswering(t *testing.T) {
	a, rec := newAgent(t)
	if _, err := a.Add(add); status(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "no sync") {
		t.Fatalf("ADD before the first list: %v", err)
	}
	applied, err := a.Objects([]byte(cluster), true)
	if err != nil {
		t.Fatal(err)
	}
	if applied.Policies != 1 || applied.Nodes != 2 || applied.Programmed != 0 {
		t.Fatalf("applied %+v: the pod has no IP yet, nothing to program", applied)
	}
	got, err := a.Add(add)
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != "u-1" || got.Entries != 1 || got.Programmed != 1 {
		t.Fatalf("ADD: %+v", got)
	}
	ops := rec.take()
	if len(ops) != 1 || source(ops[0]) != "10.0.0.5" || ops[0].Action != egressgw.ActionUpsert {
		t.Fatalf("programmed %+v", ops)
	}
	unknown := add
	unknown.Pod.Name = "web-9"
	if _, err := a.Add(unknown); status(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "shop/web-9 is not known") {
		t.Fatalf("an unknown pod: %v", err)
	}
	recreated := add
	recreated.Pod.UID = "u-2"
	if _, err := a.Add(recreated); status(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), `CNI_ARGS say "u-2"`) {
		t.Fatalf("a pod recreated before its object arrived: %v", err)
	}
	for _, c := range []struct {
		req  api.AddRequest
		path string
	}{
		{api.AddRequest{Pod: api.Pod{Name: "web-1"}, IPs: add.IPs}, "pod.namespace"},
		{api.AddRequest{Pod: api.Pod{Namespace: "shop"}, IPs: add.IPs}, "pod.name"},
		{api.AddRequest{Pod: add.Pod}, "ips"},
		{api.AddRequest{Pod: add.Pod, IPs: []string{"10.0.0.5", "10.0.0.300"}}, "ips[1]"},
	} {
		_, err := a.Add(c.req)
		var apiErr *api.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Path != c.path {
			t.Fatalf("%+v: %v, want 400 at %s", c.req, err, c.path)
		}
	}
	if len(rec.take()) != 0 {
		t.Fatal("a refused ADD programmed something")
	}
}

// A Pod event that has no IP yet keeps the addresses ADD gave the pod; after DEL, the pod's
// object (terminating, still with its IP) is not applied again until it is deleted.
func TestPodEventsAroundAddAndDel(t *testing.T) {
	a, rec := newAgent(t)
	if _, err := a.Objects([]byte(cluster), true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(add); err != nil {
		t.Fatal(err)
	}
	rec.take()
	if _, err := a.Objects([]byte(podObject("u-1", "Pending", "")), false); err != nil {
		t.Fatal(err)
	}
	if ops := rec.take(); len(ops) != 0 {
		t.Fatalf("a status update without IPs changed the maps: %+v", ops)
	}
	if err := a.Check(api.CheckRequest{Pod: add.Pod, IPs: []string{"10.0.0.5"}}); err != nil {
		t.Fatalf("CHECK: %v", err)
	}
	if err := a.Check(api.CheckRequest{Pod: add.Pod, IPs: []string{"10.0.0.6"}}); status(err) != http.StatusConflict {
		t.Fatalf("CHECK of another address: %v", err)
	}
	stale, err := a.Del(api.DelRequest{ContainerID: "c0", IfName: "eth0", Pod: add.Pod})
	if err != nil || stale.Deleted || len(rec.take()) != 0 {
		t.Fatalf("a DEL of an older sandbox (a queued DEL replayed late): %+v, %v", stale, err)
	}
	del, err := a.Del(api.DelRequest{ContainerID: "c1", IfName: "eth0"})
	if err != nil || !del.Deleted || del.Programmed != 1 {
		t.Fatalf("DEL by sandbox: %+v, %v", del, err)
	}
	if ops := rec.take(); len(ops) != 1 || ops[0].Action != egressgw.ActionDelete {
		t.Fatalf("DEL programmed %+v", ops)
	}
	again, err := a.Del(api.DelRequest{ContainerID: "c1", IfName: "eth0", Pod: add.Pod})
	if err != nil || again.Deleted || again.Programmed != 0 {
		t.Fatalf("a repeated DEL: %+v, %v", again, err)
	}
	if _, err := a.Objects([]byte(podObject("u-1", "Running", "10.0.0.5")), false); err != nil {
		t.Fatal(err)
	}
	if ops := rec.take(); len(ops) != 0 {
		t.Fatalf("the torn-down pod's object came back: %+v", ops)
	}
	if err := a.Check(api.CheckRequest{Pod: add.Pod, IPs: []string{"10.0.0.5"}}); status(err) != http.StatusNotFound {
		t.Fatalf("CHECK after DEL: %v", err)
	}
	if err := a.Delete(api.DeleteRequest{Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u-1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(api.DeleteRequest{Kind: "Secret", Name: "x"}); status(err) != http.StatusBadRequest {
		t.Fatalf("an unsupported kind: %v", err)
	}
}

// Nothing is programmed before the first full list; the list that completes it programs
// what the objects so far desire (here a pod whose Pod object already has its IP).
func TestNothingIsProgrammedBeforeTheFirstList(t *testing.T) {
	a, rec := newAgent(t)
	withIP := strings.Replace(cluster, `"status": {"phase": "Pending"}`, `"status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}]}`, 1)
	applied, err := a.Objects([]byte(withIP), false)
	if err != nil || applied.Programmed != 0 || len(rec.take()) != 0 {
		t.Fatalf("before sync: %+v, %v", applied, err)
	}
	applied, err = a.Objects([]byte(`[]`), true)
	if err != nil || applied.Programmed != 1 {
		t.Fatalf("the sync: %+v, %v", applied, err)
	}
	if _, err := a.Objects([]byte("kind: List\nitems: []\n"), true); status(err) != http.StatusBadRequest {
		t.Fatalf("YAML: %v", err)
	}
}

// The API over its unix socket: answers and errors as the client sees them; concurrent
// ADDs of different pods are served one at a time and all programmed.
func TestTheSocketAPI(t *testing.T) {
	a, rec := newAgent(t)
	socket := filepath.Join(t.TempDir(), "agent.sock")
	listener, server, err := a.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	defer listener.Close()
	c := api.NewClient(socket, 5*time.Second)
	if _, err := c.Add(add); !api.Unavailable(err) {
		t.Fatalf("ADD before sync over the socket: %v", err)
	}
	pods := []string{cluster}
	for i := 0; i < 8; i++ {
		pods = append(pods, strings.NewReplacer("web-1", fmt.Sprintf("web-p%d", i), "u-1", fmt.Sprintf("u-p%d", i)).Replace(podObject("u-1", "Pending", "")))
	}
	applied, err := c.Objects([]byte("[" + strings.Join(pods[1:], ",") + "]"))
	if err != nil || applied.Endpoints != 8 {
		t.Fatalf("objects: %+v, %v", applied, err)
	}
	if _, err := c.Objects([]byte(cluster)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Objects([]byte(`[]`), true); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req := api.AddRequest{ContainerID: fmt.Sprintf("c%d", i), Pod: api.Pod{Namespace: "shop", Name: fmt.Sprintf("web-p%d", i)},
				IPs: []string{fmt.Sprintf("10.0.1.%d", i+1)}}
			resp, err := c.Add(req)
			if err == nil && resp.Entries != 1 {
				err = fmt.Errorf("pod %d: %+v", i, resp)
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ops := rec.take(); len(ops) != 8 {
		t.Fatalf("programmed %d ops, want 8", len(ops))
	}
	st, err := c.Status()
	if err != nil || st.Entries != 8 || !st.Synced || st.Node != "worker" || st.Programmed != 8 {
		t.Fatalf("status %+v, %v", st, err)
	}
	if _, err := c.Add(api.AddRequest{Pod: api.Pod{Namespace: "shop"}}); err == nil || api.Unavailable(err) || !strings.Contains(err.Error(), "pod.name") {
		t.Fatalf("a bad ADD over the socket: %v", err)
	}
	down := api.NewClient(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	if _, err := down.Status(); !api.Unavailable(err) || !strings.Contains(err.Error(), "not reachable") {
		t.Fatalf("no agent: %v", err)
	}
}

// An operator's drain (weight 0 over /v1/node-health, which a Kubernetes Node cannot say):
// draining the only gateway (consistent mode) leaves the pod no gateway, and the entry is
// reprogrammed at once; the node's next object keeps it drained; a bad request is refused
// naming its field; cleared, the gateway is back.
func TestANodeDrainedOverTheSocket(t *testing.T) {
	e := newEngine(t, "worker", egressgw.SelectionConsistent)
	rec := &recorder{}
	a := New("worker", e, rec)
	socket := filepath.Join(t.TempDir(), "agent.sock")
	listener, server, err := a.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	defer listener.Close()
	c := api.NewClient(socket, 5*time.Second)
	if _, err := c.Sync([]byte(cluster)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(add); err != nil {
		t.Fatal(err)
	}
	gateway := func() string {
		entries, err := e.Entries()
		if err != nil || len(entries) != 1 {
			t.Fatalf("entries %+v, %v", entries, err)
		}
		return entries[0].GatewayIP.String()
	}
	if gw := gateway(); gw != "192.168.1.1" {
		t.Fatalf("before the drain: gateway %s", gw)
	}
	rec.take()
	zero := 0
	if err := c.NodeHealth(api.NodeHealthRequest{Name: "gw", Weight: &zero}); err != nil {
		t.Fatal(err)
	}
	if gw := gateway(); gw != "0.0.0.0" {
		t.Fatalf("after the drain: gateway %s", gw)
	}
	if ops := rec.take(); len(ops) != 1 || ops[0].Action != egressgw.ActionUpsert {
		t.Fatalf("the drain programmed %+v", ops)
	}
	// The node's object again (Kubernetes carries no weight): still drained.
	if _, err := c.Objects([]byte(cluster)); err != nil {
		t.Fatal(err)
	}
	if gw := gateway(); gw != "0.0.0.0" {
		t.Fatalf("the node's object undid the drain: gateway %s", gw)
	}
	tooMuch := 101
	for _, req := range []api.NodeHealthRequest{{Name: "gw", Weight: &tooMuch}, {Weight: &zero}} {
		err = c.NodeHealth(req)
		var apiErr *api.Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || (apiErr.Path != "weight" && apiErr.Path != "name") {
			t.Fatalf("%+v: %v", req, err)
		}
	}
	if gw := gateway(); gw != "0.0.0.0" {
		t.Fatalf("a refused request changed the gateway to %s", gw)
	}
	// Cleared: the node's objects' weight again.
	if err := c.NodeHealth(api.NodeHealthRequest{Name: "gw"}); err != nil {
		t.Fatal(err)
	}
	if gw := gateway(); gw != "192.168.1.1" {
		t.Fatalf("after the drain is cleared: gateway %s", gw)
	}
}

// The probes' word (consistent mode, two gateways): the agent probes every gateway node but
// itself; an unready gateway gives its pod to the other, and stays unready across an
// operator's request, which keeps its own weight; ready again, the pod returns.
func TestProbesSetReadiness(t *testing.T) {
	e := newEngine(t, "worker", egressgw.SelectionConsistent)
	a := New("worker", e, PlanOnly{})
	two := strings.NewReplacer(`, "egressIP": "192.168.1.1"`, "",
		` {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker"}`,
		` {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gw2", "labels": {"egress": "true"}},
  "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.3"}]}},
 {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker"}`).Replace(cluster)
	if _, err := a.Objects([]byte(two), true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(add); err != nil {
		t.Fatal(err)
	}
	targets := a.ProbeTargets()
	if len(targets) != 2 || targets[0].Name != "gw" || targets[1].Name != "gw2" || targets[1].Addr.String() != "192.168.1.3" {
		t.Fatalf("targets %+v", targets)
	}
	// A gateway's agent probes the other gateways, not itself.
	e2 := newEngine(t, "gw", egressgw.SelectionConsistent)
	onGateway := New("gw", e2, PlanOnly{})
	if _, err := onGateway.Objects([]byte(two), true); err != nil {
		t.Fatal(err)
	}
	if targets := onGateway.ProbeTargets(); len(targets) != 1 || targets[0].Name != "gw2" {
		t.Fatalf("the gateway's own targets %+v", targets)
	}
	gateway := func() string {
		v, err := e.Lookup(netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("1.1.1.1"))
		if err != nil || v.Kind != egressgw.VerdictForward {
			t.Fatalf("%v %v", v, err)
		}
		return v.GatewayIP.String()
	}
	first := gateway()
	firstNode, otherNode := "gw", "gw2"
	if first == "192.168.1.3" {
		firstNode, otherNode = "gw2", "gw"
	}
	a.ProbeChanged(firstNode, false)
	if gateway() == first {
		t.Fatalf("the pod stayed on the unready %s", firstNode)
	}
	// An operator's word on the same node keeps the probes' unready.
	one := 1
	if err := a.NodeHealth(api.NodeHealthRequest{Name: firstNode, Weight: &one}); err != nil {
		t.Fatal(err)
	}
	if gateway() == first {
		t.Fatal("the operator's request made the unready node ready")
	}
	a.ProbeChanged(firstNode, true)
	if gateway() != first {
		t.Fatalf("ready again, the pod did not return to %s", firstNode)
	}
	// The operator drains the other: the pod stays; the probes' ready keeps the drain.
	zero := 0
	if err := a.NodeHealth(api.NodeHealthRequest{Name: otherNode, Weight: &zero}); err != nil {
		t.Fatal(err)
	}
	a.ProbeChanged(otherNode, true)
	nodes, _ := e.GatewayNodes()
	for _, n := range nodes {
		if n.Name == otherNode && n.Weight != 0 {
			t.Fatalf("the probes undid the operator's drain: %+v", n)
		}
	}
}
