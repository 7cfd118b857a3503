//go:build egressgw_bpf

package egressgw

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func init() { exampleTags = "egressgw_bpf" }

// bpffs mounts a private bpffs for one test. Without the privilege it skips — or fails
// when EGRESS_REQUIRE_BPF=1 (CI), so that a skipped kernel test cannot pass unnoticed.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		msg := "mounting a bpffs: " + err.Error() + " (the kernel tests need root or CAP_SYS_ADMIN and CAP_BPF)"
		if os.Getenv("EGRESS_REQUIRE_BPF") == "1" {
			t.Fatal(msg)
		}
		recordSkip(t, msg)
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// recordSkip records that the kernel test t skips, and why, as one line "go TEST: WHY"
// appended (O_APPEND) to the file EGRESS_SKIP_LOG names, when it is set (the test command
// counts the lines) — as integrations/cni/internal/testkit's RecordSkip, which this module
// cannot import.
func recordSkip(t *testing.T, why string) {
	t.Helper()
	log := os.Getenv("EGRESS_SKIP_LOG")
	if log == "" {
		return
	}
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		_, err = f.WriteString("go " + t.Name() + ": " + strings.Join(strings.Fields(why), " ") + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("recording its skip in EGRESS_SKIP_LOG=%s: %v", log, err)
	}
}

// restartOn is a restarted agent: the seed's engine of cfg adopting m, which must leave it
// nothing to write.
func restartOn(t *testing.T, cfg Config, m *Maps) *Engine {
	t.Helper()
	restarted := seedEngine(t, cfg)
	if err := restarted.AdoptMaps(m); err != nil {
		t.Fatal(err)
	}
	if plan, _ := restarted.TakePlan(); plan.Len() != 0 {
		t.Fatalf("after adopting, %d operations", plan.Len())
	}
	return restarted
}

func TestProgramDumpAndAdoptTheKernelMaps(t *testing.T) {
	dir := bpffs(t)
	maps, err := CreateMaps(dir, LayoutV4V2, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	for _, name := range []string{"cilium_egress_gw_policy_v4_v2", "cilium_egress_gw_policy_v6"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("pinned map: %v", err)
		}
	}
	// Cilium 1.18's rules written to _v4_v2 alone (an override of 1.18's legacy map).
	v4v2 := Config{Layout: LayoutV4V2}
	e := seedEngine(t, v4v2)
	want, _ := e.Entries()
	stale, _ := e.TakePlan()
	applied, err := maps.Program(e)
	if err != nil || applied != len(want) {
		t.Fatalf("program: %d applied of %d, %v", applied, len(want), err)
	}
	if err := e.Ack(stale, stale.Len()); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a plan taken before Program was acknowledged: %v", err)
	}
	got, err := maps.Dump()
	if err != nil || len(got) != len(want) {
		t.Fatalf("dump: %d entries, %v", len(got), err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: kernel %+v, engine %+v", i, got[i], want[i])
		}
	}
	if applied, err := maps.Program(e); applied != 0 || err != nil {
		t.Fatalf("nothing changed, yet %d written (%v)", applied, err)
	}

	// A restarted agent: a new engine, the maps reopened, adopted — nothing to write.
	reopened, err := OpenMaps(dir, LayoutV4V2)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	restarted := restartOn(t, v4v2, reopened)
	// A pod deleted: only its entry goes.
	if found, err := restarted.DeleteEndpoint("5f48eab5-b251-555b-94c0-7481bd903033"); !found || err != nil {
		t.Fatalf("delete: %v %v", found, err)
	}
	if applied, err := reopened.Program(restarted); applied != 1 || err != nil {
		t.Fatalf("one pod deleted: %d written, %v", applied, err)
	}
	if got, _ := reopened.Dump(); len(got) != len(want)-1 {
		t.Fatalf("%d entries left, want %d", len(got), len(want)-1)
	}

	// The whole cycle under the writer lock: a fresh engine of the seed reads the maps (one
	// pod short) as its baseline and writes back that pod's entry only; then nothing.
	cycled := seedEngine(t, v4v2)
	if applied, deleted, err := maps.Reconcile(cycled); applied != 1 || deleted != 0 || err != nil {
		t.Fatalf("reconcile: %d written, %d unreadable deleted, %v", applied, deleted, err)
	}
	if applied, _, err := maps.Reconcile(cycled); applied != 0 || err != nil {
		t.Fatalf("reconcile again: %d written, %v", applied, err)
	}
	if _, _, err := maps.Reconcile(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a nil engine: %v", err)
	}

	// An engine of the other layout, or a plan over capacity: refused, nothing written.
	legacy := seedEngine(t, Config{})
	if _, err := maps.Program(legacy); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a 1.18 engine (legacy map) on v4_v2 maps: %v", err)
	}
	small := seedEngine(t, Config{Layout: LayoutV4V2, MaxEntries: 2})
	if applied, err := maps.Program(small); !errors.Is(err, ErrCapacity) || applied != 0 {
		t.Fatalf("over capacity: %d, %v", applied, err)
	}
}

// Cilium 1.20 writes the legacy IPv4 map and _v4_v2: both pinned, every IPv4 entry in
// each, read back from _v4_v2; a restart writes nothing.
func TestCilium120WritesBothIPv4Maps(t *testing.T) {
	dir := bpffs(t)
	if _, err := CreateMaps(dir, LayoutVersion, 0); !errors.Is(err, ErrInvalidEnum) {
		t.Fatalf("LayoutVersion names no maps: %v", err)
	}
	maps, err := CreateMaps(dir, LayoutDual, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	for _, name := range []string{"cilium_egress_gw_policy_v4", "cilium_egress_gw_policy_v4_v2", "cilium_egress_gw_policy_v6"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("pinned map: %v", err)
		}
	}
	e := seedEngine(t, Config{CiliumVersion: CiliumV1_20})
	want, _ := e.Entries()
	v4 := 0
	for _, x := range want {
		if x.Source.Is4() {
			v4++
		}
	}
	applied, err := maps.Program(e)
	if err != nil || applied != len(want)+v4 {
		t.Fatalf("program: %d applied, want %d (%d IPv4 entries twice): %v", applied, len(want)+v4, v4, err)
	}
	if got, err := maps.Dump(); err != nil || len(got) != len(want) {
		t.Fatalf("dump: %d entries, %v", len(got), err)
	}
	restartOn(t, Config{CiliumVersion: CiliumV1_20}, maps)
}

// The compact layout (ours): its four maps pinned, the engine's plan written to them, the
// entries read back joined, a restart adopting them (set ids and all) writes nothing, and a
// deleted pod is written away.
func TestCompactLayoutProgramsDumpsAndAdopts(t *testing.T) {
	dir := bpffs(t)
	maps, err := CreateMaps(dir, LayoutCompact, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer maps.Close()
	for _, m := range []MapID{MapCompactEndpointsV4, MapCompactEndpointsV6, MapCompactRulesV4, MapCompactRulesV6} {
		if _, err := os.Stat(filepath.Join(dir, m.String())); err != nil {
			t.Fatalf("pinned map: %v", err)
		}
	}
	compact := Config{Layout: LayoutCompact}
	if LayoutCompact.String() != "compact" || MapCompactRulesV6.String() != "egress_gw_compact_rules_v6" {
		t.Fatalf("names: %v %v", LayoutCompact, MapCompactRulesV6)
	}
	e := seedEngine(t, compact)
	want, _ := e.Entries()
	plan, err := e.TakePlan()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range plan.Ops {
		if op.Map < MapCompactEndpointsV4 || op.Map > MapCompactRulesV6 {
			t.Fatalf("an operation on %v", op.Map)
		}
	}
	if applied, err := maps.Program(e); err != nil || applied != plan.Len() {
		t.Fatalf("program: %d applied (plan %d, %d entries), %v", applied, plan.Len(), len(want), err)
	}
	got, err := maps.Dump()
	if err != nil || len(got) != len(want) {
		t.Fatalf("dump: %d entries, %v", len(got), err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: kernel %+v, engine %+v", i, got[i], want[i])
		}
	}
	restarted := restartOn(t, compact, maps)
	if found, err := restarted.DeleteEndpoint("5f48eab5-b251-555b-94c0-7481bd903033"); !found || err != nil {
		t.Fatalf("delete: %v %v", found, err)
	}
	if applied, err := maps.Program(restarted); applied < 1 || err != nil {
		t.Fatalf("one pod deleted: %d written, %v", applied, err)
	}
	left, _ := restarted.Entries()
	if got, _ := maps.Dump(); len(got) != len(left) || len(left) >= len(want) {
		t.Fatalf("%d entries left, want %d (of %d)", len(got), len(left), len(want))
	}
}

func TestOpeningMapsFails(t *testing.T) {
	dir := bpffs(t)
	_, err := OpenMaps(dir, LayoutV4V2)
	var ge *Error
	if !errors.Is(err, ErrKernel) || !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &ge) || ge.Errno != syscall.ENOENT {
		t.Fatalf("no maps pinned: %v", err)
	}
	if _, err := CreateMaps(t.TempDir(), LayoutV4V2, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a directory that is not a bpffs: %v", err)
	}
	if _, err := CreateMaps(dir, Layout(5), 0); !errors.Is(err, ErrInvalidEnum) {
		t.Fatalf("layout 5: %v", err)
	}
	maps, err := CreateMaps(dir, LayoutLegacy, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := maps.Close(); err != nil || maps.Close() != nil {
		t.Fatal("Close is idempotent")
	}
	if _, err := maps.Dump(); !errors.Is(err, ErrClosed) {
		t.Fatalf("dump of closed maps: %v", err)
	}
	if _, err := OpenMaps(dir, LayoutV4V2); !errors.Is(err, ErrKernel) {
		// Only the legacy IPv4 map is pinned: the v4_v2 one is missing.
		t.Fatalf("v4_v2 maps where the legacy one is pinned: %v", err)
	}
}
