//go:build egressgw_bpf

package agent

import (
	"path/filepath"
	"syscall"
	"testing"

	"egresscni/api"
	"egresscni/internal/testkit"

	"egressgw"
)

// bpffs mounts a private bpffs for one test; without the privilege it skips, or fails under
// EGRESS_REQUIRE_BPF=1 (CI).
func bpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		testkit.NeedPrivilege(t, "mounting a bpffs: "+err.Error()+" (the kernel tests need root or CAP_SYS_ADMIN and CAP_BPF)")
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// startAgent is an agent on the maps pinned in dir (its state file beside them), fed the
// cluster and synced.
func startAgent(t *testing.T, dir string, objects ...string) (*Agent, *KernelMaps) {
	t.Helper()
	e, err := egressgw.NewEngine(egressgw.Config{LocalNode: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	maps, err := OpenKernelMaps(dir, e, legacy(t), 1024)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewWithState("worker", e, maps, filepath.Join(stateDir(t, dir), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range objects {
		if _, err := a.Objects([]byte(text), i == len(objects)-1); err != nil {
			t.Fatal(err)
		}
	}
	return a, maps
}

var stateDirs = map[string]string{}

// stateDir is the state directory of the agents of one pin directory (a regular directory:
// a bpffs holds no files).
func stateDir(t *testing.T, pins string) string {
	if dir, ok := stateDirs[pins]; ok {
		return dir
	}
	stateDirs[pins] = t.TempDir()
	return stateDirs[pins]
}

func stop(a *Agent, m *KernelMaps) {
	m.Maps.Close()
	a.Engine().Close()
}

// ADD writes the pod's entry to the kernel map before answering; a restarted agent adopts
// the maps and, fed the same cluster, writes nothing; DEL removes the entry.
func TestAKernelAgentAdoptsItsMapsOnRestart(t *testing.T) {
	dir := bpffs(t)
	a, maps := startAgent(t, dir, cluster)
	got, err := a.Add(add)
	if err != nil || got.Programmed != 1 {
		t.Fatalf("ADD: %+v, %v", got, err)
	}
	live, err := maps.Maps.Dump()
	if err != nil || len(live) != 1 || live[0].Source.String() != "10.0.0.5" {
		t.Fatalf("the kernel map after ADD: %+v, %v", live, err)
	}
	stop(a, maps)
	// Restarted: the cluster again, with the pod's object now carrying its IP.
	withIP := podObject("u-1", "Running", "10.0.0.5")
	b, maps := startAgent(t, dir, cluster, withIP)
	defer stop(b, maps)
	st, _ := b.Status()
	if st.Programmed != 0 || st.Entries != 1 {
		t.Fatalf("the restarted agent wrote %d times (want 0), desires %d", st.Programmed, st.Entries)
	}
	del, err := b.Del(api.DelRequest{ContainerID: "c1", Pod: add.Pod})
	if err != nil || !del.Deleted || del.Programmed != 1 {
		t.Fatalf("DEL: %+v, %v", del, err)
	}
	if live, _ := maps.Maps.Dump(); len(live) != 0 {
		t.Fatalf("the kernel map after DEL: %+v", live)
	}
}

// An agent that died between writing and acknowledging (here: a stale entry another run left
// and a missing one) converges on restart: the first sync writes exactly the difference.
func TestAKernelAgentConvergesAfterACrash(t *testing.T) {
	dir := bpffs(t)
	withIP := podObject("u-1", "Running", "10.0.0.5")
	other := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-2", "namespace": "shop", "uid": "u-2",
		"labels": {"app": "web"}}, "spec": {"nodeName": "worker"}, "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.6"}]}}`
	a, maps := startAgent(t, dir, cluster, withIP, other)
	if live, _ := maps.Maps.Dump(); len(live) != 2 {
		t.Fatalf("first run: %+v", live)
	}
	stop(a, maps) // "crash": web-2 is deleted while the agent is away
	b, maps := startAgent(t, dir, cluster, withIP)
	defer stop(b, maps)
	st, _ := b.Status()
	if st.Programmed != 1 {
		t.Fatalf("the restart wrote %d operations, want 1 (the stale entry's delete)", st.Programmed)
	}
	live, _ := maps.Maps.Dump()
	if len(live) != 1 || live[0].Source.String() != "10.0.0.5" {
		t.Fatalf("after the restart: %+v", live)
	}
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
