package agent

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"egresscni/api"

	"egressgw"
)

// cluster is an in-memory cluster stream: what one agent publishes reaches every agent
// (itself too) after delay, in order, unless drop says to lose it.
type memCluster struct {
	mu      sync.Mutex
	agents  []*Agent
	delay   time.Duration
	drop    func(obj map[string]any) bool
	pending sync.WaitGroup
	seen    []map[string]any
	errs    []error
}

func (c *memCluster) Publish(objects []map[string]any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var kept []map[string]any
	for _, obj := range objects {
		c.seen = append(c.seen, obj)
		if c.drop == nil || !c.drop(obj) {
			kept = append(kept, obj)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"kind": "List", "items": kept})
	if err != nil {
		return err
	}
	for _, a := range c.agents {
		c.pending.Add(1)
		go func(a *Agent) {
			defer c.pending.Done()
			time.Sleep(c.delay)
			if _, err := a.Objects(body, false); err != nil {
				c.mu.Lock()
				c.errs = append(c.errs, err)
				c.mu.Unlock()
			}
		}(a)
	}
	return nil
}

func (c *memCluster) kinds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, obj := range c.seen {
		out = append(out, kind(obj))
	}
	return out
}

// twoNodes is a worker and the gateway gw (holding the policy's egress IP), both synced on
// the test cluster, publishing to one memCluster.
func twoNodes(t *testing.T, worker Options, delay time.Duration) (*Agent, *Agent, *memCluster) {
	t.Helper()
	c := &memCluster{delay: delay}
	make := func(node string, opts Options) *Agent {
		e, err := egressgw.NewEngine(egressgw.Config{LocalNode: node})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		if node == "gw" {
			devices := `[{"name": "eth0", "index": 2, "addresses": ["192.168.1.1/24"], "defaultRoute": ["ipv4"]}]`
			if err := e.SetDevices([]byte(devices)); err != nil {
				t.Fatal(err)
			}
		}
		a := New(node, e, PlanOnly{})
		opts.Publisher = c
		if err := a.Configure(opts); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Objects([]byte(cluster), true); err != nil {
			t.Fatal(err)
		}
		return a
	}
	w := make("worker", worker)
	gw := make("gw", Options{})
	c.agents = []*Agent{w, gw}
	t.Cleanup(func() {
		c.pending.Wait()
		if len(c.errs) > 0 {
			t.Errorf("the cluster's deliveries: %v", c.errs)
		}
	})
	return w, gw, c
}

// serves says whether a's maps make it the gateway of source (an entry with an egress IP).
func serves(t *testing.T, a *Agent, source string) bool {
	t.Helper()
	entries, err := a.Engine().Entries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Source == netip.MustParseAddr(source) && e.EgressIP.IsValid() && !e.EgressIP.IsUnspecified() {
			return true
		}
	}
	return false
}

// With a gateway acknowledgement timeout, ADD answers only once the pod's gateway serves it:
// the pod's object reaches the gateway through the cluster, the gateway's Ack comes back.
func TestAddWaitsForThePodsGateway(t *testing.T) {
	w, gw, c := twoNodes(t, Options{GatewayAckTimeout: 5 * time.Second}, 30*time.Millisecond)
	start := time.Now()
	got, err := w.Add(add)
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries != 1 || !serves(t, gw, "10.0.0.5") {
		t.Fatalf("ADD answered %+v before the gateway served the pod", got)
	}
	// Two trips through the cluster: the pod's addresses out, the Ack back.
	if took := time.Since(start); took < 60*time.Millisecond {
		t.Fatalf("ADD took %v: it cannot have waited for the gateway", took)
	}
	if kinds := strings.Join(c.kinds(), ","); kinds != "Pod,"+api.AckKind {
		t.Fatalf("published %s", kinds)
	}
	// The pod deleted: the gateway says it stopped serving it.
	if err := gw.Delete(api.DeleteRequest{Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u-1"}); err != nil {
		t.Fatal(err)
	}
	c.pending.Wait()
	c.mu.Lock()
	last := c.seen[len(c.seen)-1]["spec"].(api.Ack)
	c.mu.Unlock()
	want := []api.Served{{Source: "10.0.0.5", Gateway: "192.168.1.1"}}
	if last.Node != "gw" || len(last.Programmed) != 0 || len(last.Removed) != 1 || last.Removed[0] != want[0] {
		t.Fatalf("the gateway's last Ack: %+v", last)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.acked[want[0]] {
		t.Fatal("the worker still believes the gateway serves the deleted pod")
	}
}

// A gateway that never acknowledges fails ADD with "try again later", naming it.
func TestAddFailsWhenTheGatewayNeverAcknowledges(t *testing.T) {
	w, _, c := twoNodes(t, Options{GatewayAckTimeout: 200 * time.Millisecond}, 0)
	c.drop = func(obj map[string]any) bool { return kind(obj) == api.AckKind }
	_, err := w.Add(add)
	if status(err) != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "gateway 192.168.1.1 did not acknowledge serving 10.0.0.5 within 200ms") {
		t.Fatalf("ADD: %v", err)
	}
}

// Without the timeout ADD programs and answers at once; with ProgramOnWatch it programs
// nothing, and the pod's own object coming back through the cluster programs it (Cilium).
func TestProgramOnWatchWaitsForTheCluster(t *testing.T) {
	w, _, c := twoNodes(t, Options{ProgramOn: ProgramOnWatch}, 20*time.Millisecond)
	got, err := w.Add(add)
	if err != nil {
		t.Fatal(err)
	}
	if got.Entries != 0 || got.Programmed != 0 {
		t.Fatalf("ADD with watch programmed %+v", got)
	}
	c.pending.Wait()
	entries, err := w.entriesOf([]string{"10.0.0.5"})
	if err != nil || entries != 1 {
		t.Fatalf("after the cluster's echo: %d entries (%v)", entries, err)
	}
	w2, _, c2 := twoNodes(t, Options{}, 0)
	c2.drop = func(map[string]any) bool { return true }
	if got, err := w2.Add(add); err != nil || got.Entries != 1 {
		t.Fatalf("ADD with cni, nothing waited for: %+v %v", got, err)
	}
}

// Acks are read, never applied; a bad one is refused naming its field and changes nothing.
func TestBadAcksAreRefused(t *testing.T) {
	a, _ := newAgent(t)
	for _, c := range []struct{ spec, path string }{
		{`{"programmed": [{"source": "10.0.0.5", "gateway": "192.168.1.1"}]}`, "items[1].spec.node"},
		{`{"node": "gw", "removed": [{"source": "10.0.0.5", "gateway": "gw"}]}`, "items[1].spec.removed[0].gateway"},
		{`{"node": "gw", "programmed": "all"}`, "items[1].spec"},
	} {
		body := `[` + podObject("u-1", "Running", "10.0.0.9") + `, {"apiVersion": "egress-agent/v1", "kind": "EgressGatewayAck", "spec": ` + c.spec + `}]`
		_, err := a.Objects([]byte(body), true)
		var apiErr *api.Error
		if !asAPIError(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Path != c.path {
			t.Fatalf("%s: %v, want 400 at %s", c.spec, err, c.path)
		}
	}
	if status, _ := a.Status(); status.Pods != 0 || status.Synced {
		t.Fatalf("a refused batch changed the agent: %+v", status)
	}
}

func asAPIError(err error, out **api.Error) bool { return errors.As(err, out) }
