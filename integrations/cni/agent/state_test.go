package agent

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"egresscni/api"

	"egressgw"
)

func newStatefulAgent(t *testing.T, state string, p Programmer) *Agent {
	t.Helper()
	e := newEngine(t, "worker", egressgw.SelectionCilium)
	a, err := NewWithState("worker", e, p, state)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A restarted agent still knows each pod's current sandbox and addresses: a queued DEL of
// an older sandbox replayed at start changes nothing, and CHECK of the live pod passes.
func TestARestartKeepsWhatCNISaid(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	a := newStatefulAgent(t, state, &recorder{})
	if _, err := a.Objects([]byte(cluster), true); err != nil {
		t.Fatal(err)
	}
	second := add
	second.ContainerID = "c2"
	if _, err := a.Add(second); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	b := newStatefulAgent(t, state, rec)
	if del, err := b.Del(api.DelRequest{ContainerID: "c1", IfName: "eth0", Pod: add.Pod}); err != nil || del.Deleted {
		t.Fatalf("a stale DEL replayed at start: %+v, %v", del, err)
	}
	if _, err := b.Objects([]byte(cluster), true); err != nil {
		t.Fatal(err)
	}
	ops := rec.take()
	if len(ops) != 1 || source(ops[0]) != "10.0.0.5" || ops[0].Action != egressgw.ActionUpsert {
		t.Fatalf("the first sync after the restart: %+v (want the live pod's entry)", ops)
	}
	if err := b.Check(api.CheckRequest{Pod: add.Pod, IPs: []string{"10.0.0.5"}}); err != nil {
		t.Fatalf("CHECK after the restart: %v", err)
	}
}

// While a sandbox lives, the addresses its ADD gave are the pod's: a Pod event still carrying
// the old sandbox's address does not bring it back; the re-ADD takes the pod's new labels.
func TestTheLiveSandboxsAddressesWin(t *testing.T) {
	a, rec := newAgent(t)
	if _, err := a.Objects([]byte(cluster), true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(add); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Del(api.DelRequest{ContainerID: "c1", Pod: add.Pod}); err != nil {
		t.Fatal(err)
	}
	relabelled := strings.Replace(podObject("u-1", "Running", "10.0.0.5"), `"app": "web"`, `"app": "db"`, 1)
	if _, err := a.Objects([]byte(relabelled), false); err != nil {
		t.Fatal(err)
	}
	second := add
	second.ContainerID = "c2"
	second.IPs = []string{"10.0.0.9"}
	resp, err := a.Add(second)
	if err != nil || resp.Entries != 0 {
		t.Fatalf("re-ADD after a relabel to app=db: %+v, %v (no policy selects it)", resp, err)
	}
	back := podObject("u-1", "Running", "10.0.0.5") // app=web, the old address
	if _, err := a.Objects([]byte(back), false); err != nil {
		t.Fatal(err)
	}
	entries, _ := a.engine.Entries()
	if len(entries) != 1 || entries[0].Source.String() != "10.0.0.9" {
		t.Fatalf("entries %+v: want the live sandbox's 10.0.0.9", entries)
	}
	rec.take()
}

// A DEL of a pod no ADD was seen for leaves no trace; a Pod's delete needs its uid; a refused
// batch changes nothing, the Pod cache included.
func TestDeletesAndRefusalsLeaveNoTrace(t *testing.T) {
	a, _ := newAgent(t)
	if _, err := a.Objects([]byte(cluster), true); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := a.Del(api.DelRequest{ContainerID: "x", Pod: api.Pod{Namespace: "shop", Name: "web-1", UID: "u-never"}}); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.records) != 0 {
		t.Fatalf("records %+v", a.records)
	}
	if err := a.Delete(api.DeleteRequest{Kind: "Pod", Namespace: "shop", Name: "web-1"}); status(err) != http.StatusBadRequest {
		t.Fatalf("a Pod delete without uid: %v", err)
	}
	relabelled := strings.Replace(podObject("u-1", "Pending", ""), `"app": "web"`, `"app": "db"`, 1)
	broken := `[` + relabelled + `, {"apiVersion": "v1", "kind": "Node", "metadata": {}}]`
	if _, err := a.Objects([]byte(broken), false); status(err) != http.StatusBadRequest {
		t.Fatalf("a batch with a nameless Node: %v", err)
	}
	resp, err := a.Add(add)
	if err != nil || resp.Entries != 1 {
		t.Fatalf("ADD after a refused relabel: %+v, %v (the refused labels were cached)", resp, err)
	}
}

type failing struct{ err error }

func (f failing) Program(*egressgw.Engine) (int, error) { return 0, f.err }
func (f failing) Describe() string                      { return "failing" }

// A kernel failure is "try again later" and CHECK says the maps are not programmed; a map
// too small is not something a retry fixes.
func TestProgrammingFailures(t *testing.T) {
	a, _ := newAgent(t)
	if _, err := a.Objects([]byte(cluster), true); err != nil {
		t.Fatal(err)
	}
	a.maps = failing{err: egressgw.ErrKernel}
	if _, err := a.Add(add); status(err) != http.StatusServiceUnavailable {
		t.Fatalf("ADD with the kernel failing: %v", err)
	}
	if err := a.Check(api.CheckRequest{Pod: add.Pod, IPs: []string{"10.0.0.5"}}); status(err) != http.StatusServiceUnavailable {
		t.Fatalf("CHECK after a failed programming: %v", err)
	}
	a.maps = failing{err: egressgw.ErrCapacity}
	if _, err := a.Add(add); status(err) != http.StatusInternalServerError {
		t.Fatalf("ADD into a full map: %v", err)
	}
	a.maps = PlanOnly{}
	if _, err := a.Add(add); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(api.CheckRequest{Pod: add.Pod, IPs: []string{"10.0.0.5"}}); err != nil {
		t.Fatalf("CHECK once programmed: %v", err)
	}
}
