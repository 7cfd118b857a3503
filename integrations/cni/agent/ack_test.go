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

// memCluster is an in-memory cluster stream: what one agent publishes reaches every agent
// (itself too) after delay, in the order it was published (one delivery goroutine per
// agent), unless drop says to lose it; fail makes Publish itself fail.
type memCluster struct {
	mu      sync.Mutex
	agents  []*Agent
	queues  []chan []byte
	delay   time.Duration
	drop    func(obj map[string]any) bool
	fail    error
	pending sync.WaitGroup
	seen    []map[string]any
	errs    []error
}

// start begins delivering to the agents (set c.agents first).
func (c *memCluster) start() {
	for _, a := range c.agents {
		q := make(chan []byte, 1024)
		c.queues = append(c.queues, q)
		go func(a *Agent) {
			for body := range q {
				time.Sleep(c.delay)
				if _, err := a.Objects(body, false); err != nil {
					c.mu.Lock()
					c.errs = append(c.errs, err)
					c.mu.Unlock()
				}
				c.pending.Done()
			}
		}(a)
	}
}

func (c *memCluster) Publish(objects []map[string]any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
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
	for _, q := range c.queues {
		c.pending.Add(1)
		q <- body
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
		e := newEngine(t, node, egressgw.SelectionCilium)
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
	c.start()
	t.Cleanup(func() {
		c.pending.Wait()
		for _, q := range c.queues {
			close(q)
		}
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
	// The pod deleted: the gateway's next Ack serves nothing, and the worker believes it.
	if err := gw.Delete(api.DeleteRequest{Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u-1"}); err != nil {
		t.Fatal(err)
	}
	c.pending.Wait()
	// The newest of the gateway's Acks (two publications may overtake each other).
	var last api.Ack
	c.mu.Lock()
	for _, obj := range c.seen {
		if ack, ok := obj["spec"].(api.Ack); ok && ack.Seq > last.Seq {
			last = ack
		}
	}
	c.mu.Unlock()
	if last.Node != "gw" || len(last.Served) != 0 {
		t.Fatalf("the gateway's last Ack: %+v", last)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if held := w.acked["gw"]; held.Seq != last.Seq || len(held.Served) != 0 {
		t.Fatalf("the worker holds %+v, not the gateway's last Ack %+v (seen %+v)", held, last, c.seen)
	}
}

// A gateway that never acknowledges fails ADD with "try again later", naming it.
func TestAddFailsWhenTheGatewayNeverAcknowledges(t *testing.T) {
	w, _, c := twoNodes(t, Options{GatewayAckTimeout: 200 * time.Millisecond}, 0)
	c.mu.Lock()
	c.drop = func(obj map[string]any) bool { return kind(obj) == api.AckKind }
	c.mu.Unlock()
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
	c2.mu.Lock()
	c2.drop = func(map[string]any) bool { return true }
	c2.mu.Unlock()
	if got, err := w2.Add(add); err != nil || got.Entries != 1 {
		t.Fatalf("ADD with cni, nothing waited for: %+v %v", got, err)
	}
}

// A publication that fails is retried by the next change and by PublishServed: ADD's retry
// succeeds once the cluster works again. An Ack older than the one held is ignored, whatever
// order the publications arrive in.
func TestAcksAreRetriedAndOrdered(t *testing.T) {
	w, gw, c := twoNodes(t, Options{GatewayAckTimeout: 300 * time.Millisecond}, 0)
	c.mu.Lock()
	c.drop = func(obj map[string]any) bool { return kind(obj) == api.AckKind }
	c.mu.Unlock()
	if _, err := w.Add(add); status(err) != http.StatusServiceUnavailable {
		t.Fatalf("ADD with the Acks lost: %v", err)
	}
	// The gateway's publication failed (the cluster was down): it is still to be published.
	c.mu.Lock()
	c.drop = nil
	c.fail = errors.New("the cluster is down")
	c.mu.Unlock()
	if _, err := gw.Objects([]byte(`{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "other"}}`), false); err != nil {
		t.Fatal(err)
	}
	gw.mu.Lock()
	gw.dirty = true // as after a failed publication of a change
	gw.mu.Unlock()
	if err := gw.PublishServed(); err == nil || !strings.Contains(err.Error(), "retried later") {
		t.Fatalf("a failed publication: %v", err)
	}
	c.mu.Lock()
	c.fail = nil
	c.mu.Unlock()
	if err := gw.PublishServed(); err != nil {
		t.Fatal(err)
	}
	c.pending.Wait()
	if _, err := w.Del(api.DelRequest{ContainerID: "c1", Pod: add.Pod}); err != nil {
		t.Fatal(err)
	}
	retry := add
	retry.ContainerID = "c2"
	if _, err := w.Add(retry); err != nil {
		t.Fatalf("ADD's retry once the gateway's Ack got through: %v", err)
	}
	// An older Ack arriving late changes nothing.
	w.mu.Lock()
	held := w.acked["gw"]
	w.mu.Unlock()
	stale := api.AckObject(api.Ack{Node: "gw", Seq: held.Seq - 1})
	body, _ := json.Marshal(stale)
	if _, err := w.Objects(body, false); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if got := w.acked["gw"]; got.Seq != held.Seq || len(got.Served) != 1 {
		t.Fatalf("a stale Ack replaced %+v with %+v", held, got)
	}
}

// A pod whose gateway is its own node, without an egress IP there, has nothing to wait for:
// its traffic is dropped whatever the other nodes do (Cilium's behaviour); ADD answers at once.
func TestAddWaitsForNoOneWhenTheLocalGatewayHasNoEgressIP(t *testing.T) {
	c := &memCluster{}
	e := newEngine(t, "gw", egressgw.SelectionCilium)
	a := New("gw", e, PlanOnly{})
	if err := a.Configure(Options{Publisher: c, GatewayAckTimeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Objects([]byte(strings.Replace(cluster, `"nodeName": "worker"`, `"nodeName": "gw"`, 1)), true); err != nil {
		t.Fatal(err)
	}
	c.agents = []*Agent{a}
	c.start()
	defer c.pending.Wait()
	start := time.Now()
	if _, err := a.Add(add); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("ADD waited %v for a gateway that cannot serve the pod", took)
	}
	verdict, err := e.Lookup(netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("1.1.1.1"))
	if err != nil || verdict.Kind != egressgw.VerdictDropNoEgressIP {
		t.Fatalf("the pod's verdict here: %v %v", verdict, err)
	}
}

// Acks are read, never applied; a bad one is refused naming its field and changes nothing.
func TestBadAcksAreRefused(t *testing.T) {
	a, _ := newAgent(t)
	for _, c := range []struct{ spec, path string }{
		{`{"served": [{"source": "10.0.0.5", "gateway": "192.168.1.1"}]}`, "items[1].spec.node"},
		{`{"node": "gw", "seq": 1, "served": [{"source": "10.0.0.5", "gateway": "gw"}]}`, "items[1].spec.served[0].gateway"},
		{`{"node": "gw", "served": "all"}`, "items[1].spec"},
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
