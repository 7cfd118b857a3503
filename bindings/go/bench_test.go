package egressgw

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The benchmarks run on the workload `binding_workload` (benches/src/bin) writes to
// $EGRESS_BENCH_DATA — W-cluster as a snapshot, IPv4 queries, the pods of CNI ADDs — and
// measures through the Rust API and the C ABI in the same run. scripts/bench-go.sh runs
// both and prints the figures side by side.

type benchData struct {
	snapshot   []byte
	queries    [][2]netip.Addr
	pods       []Endpoint
	podOps     []int
	maxEntries uint32
	checksum   uint64
}

func loadBenchData(b *testing.B) *benchData {
	b.Helper()
	dir := os.Getenv("EGRESS_BENCH_DATA")
	if dir == "" {
		b.Skip("EGRESS_BENCH_DATA is not set: scripts/bench-go.sh writes the workload and sets it")
	}
	d := &benchData{snapshot: readFile(b, filepath.Join(dir, "cluster.json"))}
	packed := readFile(b, filepath.Join(dir, "queries.v4"))
	for i := 0; i+8 <= len(packed); i += 8 {
		d.queries = append(d.queries, [2]netip.Addr{
			netip.AddrFrom4(*(*[4]byte)(packed[i : i+4])),
			netip.AddrFrom4(*(*[4]byte)(packed[i+4 : i+8])),
		})
	}
	var expected struct {
		MaxEntries     uint32 `json:"max_entries"`
		LookupChecksum string `json:"lookup_checksum"`
	}
	if err := json.Unmarshal(readFile(b, filepath.Join(dir, "expected.json")), &expected); err != nil {
		b.Fatal(err)
	}
	sum, err := strconv.ParseUint(expected.LookupChecksum, 16, 64)
	if err != nil || len(d.queries) == 0 {
		b.Fatalf("expected.json: checksum %q (%v), %d queries", expected.LookupChecksum, err, len(d.queries))
	}
	d.maxEntries, d.checksum = expected.MaxEntries, sum
	var pods []struct {
		UID, Namespace, Node    string
		Labels, NamespaceLabels map[string]string
		IPs                     []netip.Addr
		Ops                     int
	}
	if err := json.Unmarshal(readFile(b, filepath.Join(dir, "pods.json")), &pods); err != nil || len(pods) == 0 {
		b.Fatalf("pods.json: %d pods, %v", len(pods), err)
	}
	for _, p := range pods {
		d.pods = append(d.pods, Endpoint{UID: p.UID, Namespace: p.Namespace, Labels: p.Labels,
			NamespaceLabels: p.NamespaceLabels, IPs: p.IPs, Node: p.Node})
		d.podOps = append(d.podOps, p.Ops)
	}
	return d
}

func (d *benchData) engine(b *testing.B) *Engine {
	b.Helper()
	e, err := FromSnapshot(d.snapshot, Config{MaxEntries: d.maxEntries})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// record is a verdict as the 28-byte record every binding packs (kind, gateway IPv4, egress
// IP, ifindex; little-endian numbers).
func record(v Verdict) (out [28]byte) {
	binary.LittleEndian.PutUint32(out[0:], uint32(v.Kind))
	if v.GatewayIP.IsValid() {
		g := v.GatewayIP.As4()
		copy(out[4:8], g[:])
	}
	if v.EgressIP.Is4() {
		g := v.EgressIP.As4()
		copy(out[8:12], g[:])
	} else if v.EgressIP.IsValid() {
		g := v.EgressIP.As16()
		copy(out[8:24], g[:])
	}
	binary.LittleEndian.PutUint32(out[24:], v.Ifindex)
	return out
}

// checkAnswers: every query's answer equals the Rust engine's (FNV-1a-64 over the records).
func (d *benchData) checkAnswers(b *testing.B, e *Engine) {
	b.Helper()
	sum := uint64(0xcbf29ce484222325)
	for _, q := range d.queries {
		v, err := e.Lookup(q[0], q[1])
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range record(v) {
			sum = (sum ^ uint64(c)) * 0x100000001b3
		}
	}
	if sum != d.checksum {
		b.Fatalf("the Go answers' checksum %016x differs from Rust's %016x", sum, d.checksum)
	}
}

// BenchmarkLookup: one Engine.Lookup per operation (IPv4), cycling through the queries.
func BenchmarkLookup(b *testing.B) {
	d := loadBenchData(b)
	e := d.engine(b)
	d.checkAnswers(b, e)
	b.ReportAllocs()
	b.ResetTimer()
	n := len(d.queries)
	for i := 0; i < b.N; i++ {
		q := &d.queries[i%n]
		if _, err := e.Lookup(q[0], q[1]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCgoCrossing: one call of a C function that does nothing — the floor under every
// call of the package, whatever the library does.
func BenchmarkCgoCrossing(b *testing.B) {
	var sum uint32
	for i := 0; i < b.N; i++ {
		sum += crossing(uintptr(i))
	}
	if b.N > 1 && sum == 0 {
		b.Fatal("the C function answered nothing")
	}
}

// BenchmarkLookupBatch: Engine.LookupBatch over 4,096 queries per call; ns/op is per query.
func BenchmarkLookupBatch(b *testing.B) {
	d := loadBenchData(b)
	e := d.engine(b)
	queries := make([]Query, len(d.queries))
	for i, q := range d.queries {
		queries[i] = Query{Src: q[0], Dst: q[1]}
	}
	out := make([]Verdict, len(queries))
	if err := e.LookupBatch(queries, out); err != nil {
		b.Fatal(err)
	}
	for i, q := range d.queries {
		if v, _ := e.Lookup(q[0], q[1]); v != out[i] {
			b.Fatalf("query %d: batch %v, single %v", i, out[i], v)
		}
	}
	const per = 4096
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		start := done % len(queries)
		n := per
		if n > b.N-done {
			n = b.N - done
		}
		if n > len(queries)-start {
			n = len(queries) - start
		}
		if err := e.LookupBatch(queries[start:start+n], out[:n]); err != nil {
			b.Fatal(err)
		}
		done += n
	}
}

// BenchmarkLookupParallel: Engine.Lookup from GOMAXPROCS goroutines at once (the read lock
// shared).
func BenchmarkLookupParallel(b *testing.B) {
	d := loadBenchData(b)
	e := d.engine(b)
	n := len(d.queries)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			q := &d.queries[i%n]
			if _, err := e.Lookup(q[0], q[1]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkCNIAdd: the CNI ADD path per operation — UpsertEndpoint with a typed Endpoint,
// TakePlan, Ack — on an engine whose cluster is programmed. Each plan must hold as many
// operations as Rust's did. When the pods run out, they are deleted (untimed) and added
// again.
func BenchmarkCNIAdd(b *testing.B) {
	d := loadBenchData(b)
	e := d.engine(b)
	ack := func() {
		plan, err := e.TakePlan()
		if err == nil {
			err = e.Ack(plan, plan.Len())
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	ack()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(d.pods)
		if k == 0 && i > 0 {
			b.StopTimer()
			for _, p := range d.pods {
				if found, err := e.DeleteEndpoint(p.UID); !found || err != nil {
					b.Fatalf("delete %s: %v %v", p.UID, found, err)
				}
			}
			ack()
			b.StartTimer()
		}
		if err := e.UpsertEndpoint(d.pods[k]); err != nil {
			b.Fatal(err)
		}
		plan, err := e.TakePlan()
		if err != nil {
			b.Fatal(err)
		}
		if plan.Len() != d.podOps[k] {
			b.Fatal(fmt.Sprintf("pod %s: %d operations, Rust's plan had %d", d.pods[k].UID, plan.Len(), d.podOps[k]))
		}
		if err := e.Ack(plan, plan.Len()); err != nil {
			b.Fatal(err)
		}
	}
}
