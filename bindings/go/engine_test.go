package egressgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLookupAnswersAsTheMapsSay(t *testing.T) {
	e := seedEngine(t, Config{})
	internet := mustAddr("8.8.8.8")
	for _, c := range []struct {
		src  string
		want Verdict
	}{
		// The local node (172.22.49.119) is this pod's gateway: SNAT here.
		{"172.22.48.4", Verdict{Kind: VerdictMasquerade, EgressIP: mustAddr("172.22.49.119")}},
		// Another gateway: tunnel there.
		{"172.22.48.10", Verdict{Kind: VerdictForward, GatewayIP: mustAddr("172.22.49.147")}},
		// Not an endpoint a policy selects.
		{"10.9.9.9", Verdict{Kind: VerdictNoEntry}},
	} {
		got, err := e.Lookup(mustAddr(c.src), internet)
		if err != nil || got != c.want {
			t.Errorf("%s -> 8.8.8.8: %v (%v), want %v", c.src, got, err, c.want)
		}
	}
	// Families differ: an argument error (the library's rule, SEMANTICS B.6), naming dst.
	var mixed *Error
	if _, err := e.Lookup(mustAddr("172.22.48.4"), mustAddr("2001:db8::1")); !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &mixed) || mixed.Path() != "dst" {
		t.Errorf("mixed families: %v", err)
	}
	// Every entry answers its own lookup: the verdict agrees with the entry.
	entries, err := e.Entries()
	if err != nil || len(entries) == 0 {
		t.Fatalf("entries: %d, %v", len(entries), err)
	}
	for _, entry := range entries {
		v, err := e.Lookup(entry.Source, entry.Destination.Addr())
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case entry.GatewayIP == mustAddr("0.0.0.1"):
			if v.Kind != VerdictExcluded {
				t.Errorf("%+v: %v", entry, v)
			}
		case entry.GatewayIP == mustAddr("0.0.0.0"):
			if v.Kind != VerdictDropNoGateway {
				t.Errorf("%+v: %v", entry, v)
			}
		case v.Kind == VerdictMasquerade:
			if v.EgressIP != entry.EgressIP || v.Ifindex != entry.EgressIfindex {
				t.Errorf("%+v: %v", entry, v)
			}
		case v.Kind != VerdictForward || v.GatewayIP != entry.GatewayIP:
			t.Errorf("%+v: %v", entry, v)
		}
	}
}

func TestEntriesAreTheMapsJSONRows(t *testing.T) {
	e := seedEngine(t, Config{})
	entries, _ := e.Entries()
	doc, _ := e.MapsJSON()
	var maps struct {
		IPv4 []struct {
			SourceIP, DestCIDR, EgressIP, GatewayIP string
			EgressIfindex                           uint32
		}
	}
	if err := json.Unmarshal(doc, &maps); err != nil {
		t.Fatal(err)
	}
	if len(maps.IPv4) != len(entries) {
		t.Fatalf("%d rows, %d entries", len(maps.IPv4), len(entries))
	}
	for i, row := range maps.IPv4 {
		got := entries[i]
		if got.Source.String() != row.SourceIP || got.Destination.String() != row.DestCIDR ||
			got.EgressIP.String() != row.EgressIP || got.GatewayIP.String() != row.GatewayIP ||
			got.EgressIfindex != row.EgressIfindex {
			t.Errorf("entry %d: %+v, row %+v", i, got, row)
		}
	}
}

func TestExplainAndConflictsAreJSON(t *testing.T) {
	e := seedEngine(t, Config{})
	doc, err := e.Explain(mustAddr("172.22.48.10"), mustAddr("8.8.8.8"))
	if err != nil {
		t.Fatal(err)
	}
	var why struct {
		Verdict struct{ Kind string }
		Match   struct {
			Producer struct{ Policy string }
			Gateway  struct{ Node string }
		}
	}
	if err := json.Unmarshal(doc, &why); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	if why.Verdict.Kind != "forward" || why.Match.Producer.Policy != "egress-test" || why.Match.Gateway.Node != "172.22.49.147" {
		t.Fatalf("explain: %s", doc)
	}
	var none []json.RawMessage
	if doc, err := e.ConflictsJSON(); err != nil || json.Unmarshal(doc, &none) != nil || len(none) != 0 {
		t.Fatalf("the seed has no conflicts: %s %v", doc, err)
	}
	c, err := FromSnapshot(readFile(t, filepath.Join(examplesDir(t), "selectors-and-conflicts.yaml")), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	doc, err = c.ConflictsJSON()
	var conflicts []struct {
		Winner     struct{ Policy string }
		Overridden []struct{ Policy string }
	}
	if err != nil || json.Unmarshal(doc, &conflicts) != nil || len(conflicts) == 0 {
		t.Fatalf("conflicts: %s %v", doc, err)
	}
	for _, k := range conflicts {
		if k.Winner.Policy == "" || len(k.Overridden) == 0 {
			t.Fatalf("conflict without winner or losers: %s", doc)
		}
	}
}

func TestPlansAckAndAdopt(t *testing.T) {
	e := seedEngine(t, Config{})
	stats, _ := e.Stats()
	plan, err := e.TakePlan()
	if err != nil {
		t.Fatal(err)
	}
	if plan.Len() != stats.DesiredV4+stats.DesiredV6 || plan.Len() < 3 {
		t.Fatalf("first plan: %d ops for %+v", plan.Len(), stats)
	}
	for _, op := range plan.Ops {
		// Cilium 1.18 (the default): the legacy IPv4 map, 8-byte values.
		if op.Action != ActionUpsert || op.Map != MapV4Legacy || len(op.Key) != 12 || len(op.Value) != 8 {
			t.Fatalf("op %v %v key %d value %d", op.Action, op.Map, len(op.Key), len(op.Value))
		}
	}
	// Too many, or a stale plan: refused.
	if err := e.Ack(plan, plan.Len()+1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("ack past the end: %v", err)
	}
	if err := e.Ack(plan, 2); err != nil {
		t.Fatal(err)
	}
	rest, err := e.TakePlan()
	if err != nil || rest.Len() != plan.Len()-2 {
		t.Fatalf("after acking 2 of %d: %d ops, %v", plan.Len(), rest.Len(), err)
	}
	if err := e.Ack(plan, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("ack of a stale plan: %v", err)
	}
	// Two engines that took one plan each: their plans' numbers are equal, yet neither
	// acknowledges the other's.
	x, y := seedEngine(t, Config{}), seedEngine(t, Config{})
	px, _ := x.TakePlan()
	if py, _ := y.TakePlan(); py.Len() == 0 || px.Len() != py.Len() {
		t.Fatal("twin engines, different plans")
	}
	if err := y.Ack(px, px.Len()); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("ack of another engine's plan: %v", err)
	}
	if s, _ := y.Stats(); s.ProgrammedV4 != 0 {
		t.Fatalf("another engine's plan was acknowledged: %+v", s)
	}
	if err := e.Ack(rest, rest.Len()); err != nil {
		t.Fatal(err)
	}
	if err := e.Ack(rest, rest.Len()); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a plan acknowledged twice: %v", err)
	}
	if p, _ := e.TakePlan(); p.Len() != 0 {
		t.Fatalf("everything written, yet %d ops", p.Len())
	}

	// A twin that adopts what the first wrote plans nothing.
	twin := seedEngine(t, Config{})
	var elements []MapElement
	for _, op := range plan.Ops {
		elements = append(elements, MapElement{Map: op.Map, Key: op.Key, Value: op.Value})
	}
	bad := append([]MapElement{}, elements...)
	bad[1].Key = bad[1].Key[:5]
	var ge *Error
	if err := twin.Adopt(bad); !errors.As(err, &ge) || !strings.HasPrefix(ge.Path(), "elements[1]") {
		t.Fatalf("adopting a short key: %v", err)
	}
	if err := twin.Adopt(elements); err != nil {
		t.Fatal(err)
	}
	if p, _ := twin.TakePlan(); p.Len() != 0 {
		t.Fatalf("after adopting, %d ops", p.Len())
	}
	if s, _ := twin.Stats(); s.ProgrammedV4 != stats.DesiredV4 || s.PendingSources != 0 {
		t.Fatalf("stats after adopt: %+v", s)
	}
}

func TestAPlanOverCapacityIsRefused(t *testing.T) {
	e := seedEngine(t, Config{MaxEntries: 3})
	_, err := e.TakePlan()
	if !errors.Is(err, ErrCapacity) || !strings.Contains(err.Error(), "cilium_egress_gw_policy_v4:") {
		t.Fatalf("want ErrCapacity naming the map: %v", err)
	}
	if err := e.Ack(Plan{}, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a refused plan cannot be acknowledged: %v", err)
	}
}

// The typed CNI ADD path and the JSON path give the same plan, byte for byte.
func TestTypedAndJSONEndpointsAgree(t *testing.T) {
	typed, viaJSON := seedEngine(t, Config{}), seedEngine(t, Config{})
	for _, e := range []*Engine{typed, viaJSON} {
		p, _ := e.TakePlan()
		if err := e.Ack(p, p.Len()); err != nil {
			t.Fatal(err)
		}
	}
	err := typed.UpsertEndpoint(Endpoint{
		UID:             "11111111-2222-3333-4444-555555555555",
		Namespace:       "default",
		Labels:          map[string]string{"app": "nginx", "pod-template-hash": "54c98b4f84"},
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "default"},
		IPs:             []netip.Addr{mustAddr("172.22.48.200"), mustAddr("fd00::c8")},
		Node:            "172.22.48.48",
	})
	if err != nil {
		t.Fatal(err)
	}
	err = viaJSON.UpsertEndpointJSON([]byte(`{"uid": "11111111-2222-3333-4444-555555555555",
		"namespace": "default", "labels": {"app": "nginx", "pod-template-hash": "54c98b4f84"},
		"namespaceLabels": {"kubernetes.io/metadata.name": "default"},
		"ips": ["172.22.48.200", "fd00::c8"], "node": "172.22.48.48"}`))
	if err != nil {
		t.Fatal(err)
	}
	a, err1 := typed.TakePlan()
	b, err2 := viaJSON.TakePlan()
	if err1 != nil || err2 != nil || a.Len() == 0 || a.Len() != b.Len() {
		t.Fatalf("plans: %d (%v) and %d (%v)", a.Len(), err1, b.Len(), err2)
	}
	for i := range a.Ops {
		x, y := a.Ops[i], b.Ops[i]
		if x.Map != y.Map || x.Action != y.Action || !bytes.Equal(x.Key, y.Key) || !bytes.Equal(x.Value, y.Value) {
			t.Fatalf("op %d differs: %+v vs %+v", i, x, y)
		}
		v6 := mustAddr("fd00::c8").As16()
		if !bytes.Contains(x.Key, []byte{172, 22, 48, 200}) && !bytes.Contains(x.Key, v6[:]) {
			t.Fatalf("op %d is not the new pod's: key %x", i, x.Key)
		}
	}
	if v, _ := typed.Lookup(mustAddr("172.22.48.200"), mustAddr("1.1.1.1")); v.Kind == VerdictNoEntry {
		t.Fatalf("the new pod has no entry: %v", v)
	}
	// Deleting it gives back the deletes; deleting again finds nothing.
	if found, err := typed.DeleteEndpoint("11111111-2222-3333-4444-555555555555"); !found || err != nil {
		t.Fatalf("delete: %v %v", found, err)
	}
	if found, err := typed.DeleteEndpoint("11111111-2222-3333-4444-555555555555"); found || err != nil {
		t.Fatalf("second delete: %v %v", found, err)
	}
}

func TestNamespaceLabelsReselect(t *testing.T) {
	e := seedEngine(t, Config{})
	policy := `apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: team-a, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  selectors: [{namespaceSelector: {matchLabels: {team: a}}}]
  destinationCIDRs: [203.0.113.0/24]
  egressGateway: {nodeSelector: {matchLabels: {kubernetes.io/hostname: 172.22.49.119}}}
`
	if err := e.UpsertPolicy([]byte(policy)); err != nil {
		t.Fatal(err)
	}
	src, dst := mustAddr("172.22.48.4"), mustAddr("203.0.113.9")
	before, _ := e.Lookup(src, dst)
	if err := e.UpsertNamespace("default", map[string]string{"team": "a", "kubernetes.io/metadata.name": "default"}); err != nil {
		t.Fatal(err)
	}
	after, _ := e.Lookup(src, dst)
	if after.Kind != VerdictMasquerade || after.EgressIP != mustAddr("172.22.49.119") {
		t.Fatalf("after labelling the namespace: %v (before: %v)", after, before)
	}
	if err := e.UpsertNamespaceJSON([]byte(`{"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}`)); err != nil {
		t.Fatal(err)
	}
	if found, err := e.DeletePolicy("team-a"); !found || err != nil {
		t.Fatalf("delete policy: %v %v", found, err)
	}
	if found, _ := e.DeletePolicy("team-a"); found {
		t.Fatal("deleted twice")
	}
}

func TestNodesComeAndGo(t *testing.T) {
	e := seedEngine(t, Config{})
	src, dst := mustAddr("172.22.48.10"), mustAddr("8.8.8.8")
	if v, _ := e.Lookup(src, dst); v.Kind != VerdictForward {
		t.Fatalf("before: %v", v)
	}
	if found, err := e.DeleteNode("172.22.49.147"); !found || err != nil {
		t.Fatalf("delete node: %v %v", found, err)
	}
	after, _ := e.Lookup(src, dst)
	if after.Kind == VerdictForward && after.GatewayIP == mustAddr("172.22.49.147") {
		t.Fatalf("a deleted gateway is still chosen: %v", after)
	}
	err := e.UpsertNode([]byte(`{"name": "172.22.49.147", "labels": {"kubernetes.io/hostname": "172.22.49.147", "egress-node": "true"}, "ipv4": "172.22.49.147"}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := e.Lookup(src, dst); v.Kind != VerdictForward || v.GatewayIP != mustAddr("172.22.49.147") {
		t.Fatalf("after the node came back: %v", v)
	}
	if s, _ := e.Stats(); s.Nodes != 5 || s.Endpoints == 0 || s.Policies != 1 || s.MaxEntries != 16384 || s.MaxEntriesV6 != 16384 || s.MemoryBytes == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNewEngineFromEvents(t *testing.T) {
	e, err := NewEngine(Config{LocalNode: "gw", Selection: SelectionConsistent, Layout: LayoutLegacy, MaxEntries: 64, Cluster: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, node := range []string{
		`{"name": "gw", "labels": {"egress": "true"}, "ipv4": "192.168.1.1"}`,
		`{"name": "worker", "ipv4": "192.168.1.2"}`,
	} {
		if err := e.UpsertNode([]byte(node)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.SetDevices([]byte(`[{"name": "eth0", "index": 2, "addresses": ["192.168.1.1/24"], "defaultRoute": true}]`)); err != nil {
		t.Fatal(err)
	}
	err = e.UpsertPolicyJSON([]byte(`{"apiVersion": "cilium.io/v2", "kind": "CiliumEgressGatewayPolicy",
		"metadata": {"name": "web"},
		"spec": {"selectors": [{"podSelector": {"matchLabels": {"app": "web", "io.cilium.k8s.policy.cluster": "c1"}}}],
		"destinationCIDRs": ["0.0.0.0/0"], "egressGateway": {"nodeSelector": {"matchLabels": {"egress": "true"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.UpsertEndpoint(Endpoint{UID: "p1", Namespace: "default", Labels: map[string]string{"app": "web"}, IPs: []netip.Addr{mustAddr("10.0.0.7")}, Node: "worker"}); err != nil {
		t.Fatal(err)
	}
	plan, err := e.TakePlan()
	if err != nil || plan.Len() != 1 || plan.Ops[0].Map != MapV4Legacy || len(plan.Ops[0].Value) != 8 {
		t.Fatalf("plan %+v %v", plan, err)
	}
	// Cilium 1.18 derives no egress ifindex.
	if v, _ := e.Lookup(mustAddr("10.0.0.7"), mustAddr("1.1.1.1")); v != (Verdict{Kind: VerdictMasquerade, EgressIP: mustAddr("192.168.1.1"), Ifindex: 0}) {
		t.Fatalf("verdict %v", v)
	}
}

// LookupBatch answers as Lookup does, for every family mix, across chunk boundaries.
func TestLookupBatchAgreesWithLookup(t *testing.T) {
	e := seedEngine(t, Config{})
	entries, _ := e.Entries()
	var queries []Query
	dsts := []netip.Addr{mustAddr("8.8.8.8"), mustAddr("172.22.0.1"), mustAddr("::ffff:8.8.8.8")}
	for i := 0; i < 700; i++ {
		src, dst := entries[i%len(entries)].Source, dsts[i%len(dsts)]
		if i%5 == 0 {
			src, dst = mustAddr("fd00::4"), mustAddr("2001:db8::8")
		}
		queries = append(queries, Query{Src: src, Dst: dst})
	}
	out := make([]Verdict, len(queries)+3)
	if err := e.LookupBatch(queries, out); err != nil {
		t.Fatal(err)
	}
	kinds := map[VerdictKind]int{}
	for i, q := range queries {
		want, _ := e.Lookup(q.Src, q.Dst)
		if out[i] != want {
			t.Fatalf("query %d %v: batch %v, single %v", i, q, out[i], want)
		}
		kinds[want.Kind]++
	}
	if len(kinds) < 3 {
		t.Fatalf("the queries cover too few kinds: %v", kinds)
	}
	var ge *Error
	if err := e.LookupBatch(queries, out[:10]); !errors.As(err, &ge) || ge.Path() != "out" {
		t.Fatalf("short out: %v", err)
	}
	// A query of two families refuses the batch, naming it.
	twoFamilies := append([]Query{}, queries...)
	twoFamilies[642].Dst = mustAddr("2001:db8::9")
	if err := e.LookupBatch(twoFamilies, out); !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ge) || ge.Path() != "queries[642].dst" {
		t.Fatalf("two families in a batch: %v", err)
	}
	queries[600].Dst = netip.Addr{}
	if err := e.LookupBatch(queries, out); !errors.As(err, &ge) || ge.Path() != "queries[600].Dst" {
		t.Fatalf("zero address: %v", err)
	}
	if err := e.LookupBatch(nil, nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

// An IPv4 address in its IPv4-mapped IPv6 form (a 16-byte net.IP through
// netip.AddrFromSlice) is the IPv4 address: in the endpoint, in lookups, in explain.
func TestIPv4MappedAddressesAreIPv4(t *testing.T) {
	e := seedEngine(t, Config{})
	mapped := func(s string) netip.Addr {
		a, ok := netip.AddrFromSlice(net.ParseIP(s))
		if !ok || !a.Is4In6() {
			t.Fatalf("%s: not a 4in6 address", s)
		}
		return a
	}
	err := e.UpsertEndpoint(Endpoint{UID: "mapped", Namespace: "default",
		Labels: map[string]string{"app": "nginx"}, IPs: []netip.Addr{mapped("172.22.48.201")}, Node: "172.22.48.48"})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := e.Entries()
	found := false
	for _, entry := range entries {
		found = found || entry.Source == mustAddr("172.22.48.201")
		if entry.Source.Is4In6() {
			t.Fatalf("an IPv4-mapped source reached the maps: %+v", entry)
		}
	}
	if !found {
		t.Fatal("the pod has no IPv4 entry")
	}
	direct, _ := e.Lookup(mustAddr("172.22.48.4"), mustAddr("8.8.8.8"))
	viaMapped, err := e.Lookup(mapped("172.22.48.4"), mapped("8.8.8.8"))
	if err != nil || viaMapped != direct || direct.Kind != VerdictMasquerade {
		t.Fatalf("mapped lookup %v (%v), direct %v", viaMapped, err, direct)
	}
	out := make([]Verdict, 1)
	if err := e.LookupBatch([]Query{{Src: mapped("172.22.48.4"), Dst: mustAddr("8.8.8.8")}}, out); err != nil || out[0] != direct {
		t.Fatalf("mapped batch lookup %v (%v)", out[0], err)
	}
	a, _ := e.Explain(mustAddr("172.22.48.4"), mustAddr("8.8.8.8"))
	b, _ := e.Explain(mapped("172.22.48.4"), mapped("8.8.8.8"))
	if !bytes.Equal(a, b) {
		t.Fatal("explain differs for the mapped form")
	}
	// A zone is refused everywhere, not dropped.
	var ge *Error
	if _, err := e.Lookup(mustAddr("fe80::1%eth0"), mustAddr("fe80::2")); !errors.As(err, &ge) || ge.Path() != "src" {
		t.Fatalf("zone in a lookup: %v", err)
	}
	if err := e.LookupBatch([]Query{{Src: mustAddr("fe80::1"), Dst: mustAddr("fe80::2%eth0")}}, out); !errors.As(err, &ge) || ge.Path() != "queries[0].Dst" {
		t.Fatalf("zone in a batch: %v", err)
	}
}

// An endpoint without addresses (a pod before IPAM) is accepted, after one with addresses
// (the reused C memory must not leak the earlier one's).
func TestAnEndpointWithoutAddresses(t *testing.T) {
	e := seedEngine(t, Config{})
	before, _ := e.Stats()
	for i := 0; i < 20; i++ {
		with := Endpoint{UID: fmt.Sprintf("with-%d", i), Node: "172.22.48.125", IPs: []netip.Addr{mustAddr("172.22.60.1")}}
		if err := e.UpsertEndpoint(with); err != nil {
			t.Fatal(err)
		}
		without := Endpoint{UID: fmt.Sprintf("without-%d", i), Node: "172.22.48.125"}
		if err := e.UpsertEndpoint(without); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if after, _ := e.Stats(); after.Endpoints != before.Endpoints+40 {
		t.Fatalf("endpoints %d, want %d", after.Endpoints, before.Endpoints+40)
	}
}

// A bad label among several is named by its place in key order, the same every time.
func TestABadLabelIsNamedTheSameEveryTime(t *testing.T) {
	e := seedEngine(t, Config{})
	labels := map[string]string{"a": "1", "b\xff": "2", "c": "3", "d": "4", "e": "5"}
	for i := 0; i < 50; i++ {
		err := e.UpsertEndpoint(Endpoint{UID: "u", Labels: labels})
		var ge *Error
		if !errors.Is(err, ErrInvalidUTF8) || !errors.As(err, &ge) || ge.Path() != "endpoint.labels[1].key" {
			t.Fatalf("try %d: %v", i, err)
		}
	}
}

// Lookups allocate nothing, single or batched.
func TestLookupsAllocateNothing(t *testing.T) {
	e := seedEngine(t, Config{})
	src, dst := mustAddr("172.22.48.4"), mustAddr("8.8.8.8")
	if n := testing.AllocsPerRun(200, func() { _, _ = e.Lookup(src, dst) }); n != 0 {
		t.Fatalf("Lookup: %v allocations", n)
	}
	queries := make([]Query, 600)
	for i := range queries {
		queries[i] = Query{Src: src, Dst: dst}
		if i%3 == 0 {
			queries[i] = Query{Src: mustAddr("fd00::4"), Dst: mustAddr("2001:db8::1")}
		}
	}
	out := make([]Verdict, len(queries))
	if n := testing.AllocsPerRun(50, func() { _ = e.LookupBatch(queries, out) }); n != 0 {
		t.Fatalf("LookupBatch: %v allocations", n)
	}
}

func TestANilEngine(t *testing.T) {
	var e *Engine
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Lookup(mustAddr("1.1.1.1"), mustAddr("1.1.1.2")); !errors.Is(err, ErrClosed) {
		t.Fatalf("lookup on nil: %v", err)
	}
	if err := e.UpsertPolicy([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("event on nil: %v", err)
	}
}

// Each Cilium version's maps, as the core says (the same answer as C's
// egress_cilium_version_layout and Python's cilium_version_layout).
func TestCiliumVersionLayout(t *testing.T) {
	for v, want := range map[CiliumVersion]Layout{CiliumV1_18: LayoutLegacy, CiliumV1_19: LayoutLegacy, CiliumV1_20: LayoutDual} {
		if got, err := v.Layout(); err != nil || got != want {
			t.Fatalf("%s: %s, %v (want %s)", v, got, err, want)
		}
	}
	if _, err := CiliumVersion(7).Layout(); !errors.Is(err, ErrInvalidEnum) {
		t.Fatalf("an unknown version: %v", err)
	}
}

// SetNodeHealth gives the entries of the same snapshot with the node's ready/weight written
// in it (consistent mode), keeps compat mode's, and refuses a bad weight naming it.
func TestSetNodeHealth(t *testing.T) {
	text := readFile(t, filepath.Join(examplesDir(t), "egress-pool-consistent.yaml"))
	said := bytes.Replace(text, []byte("- name: 172.22.49.147\n"), []byte("- name: 172.22.49.147\n  ready: false\n"), 1)
	if bytes.Equal(said, text) {
		t.Fatal("the example's node 172.22.49.147 is not where the test expects it")
	}
	for _, sel := range []Selection{SelectionConsistent, SelectionCilium} {
		e, err := FromSnapshot(text, Config{Selection: sel})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		want, err := FromSnapshot(said, Config{Selection: sel})
		if err != nil {
			t.Fatal(err)
		}
		defer want.Close()
		before, _ := e.Entries()
		notReady := false
		if found, err := e.SetNodeHealth("172.22.49.147", NodeHealth{Ready: &notReady}); err != nil || !found {
			t.Fatalf("%v: %v %v", sel, found, err)
		}
		got, _ := e.Entries()
		wanted, _ := want.Entries()
		if !reflect.DeepEqual(got, wanted) {
			t.Fatalf("%v: entries after SetNodeHealth differ from the snapshot saying so", sel)
		}
		if moved := !reflect.DeepEqual(got, before); moved != (sel == SelectionConsistent) {
			t.Fatalf("%v: moved %v", sel, moved)
		}
		// What the probes watch: the unready gateway still, saying so.
		nodes, err := e.GatewayNodes()
		if err != nil || len(nodes) != 3 || nodes[1].Name != "172.22.49.147" || nodes[1].Ready || !nodes[0].Ready ||
			nodes[1].IPv4 == nil || nodes[1].IPv4.String() != "172.22.49.147" {
			t.Fatalf("%v: gateway nodes %+v, %v", sel, nodes, err)
		}
		for _, w := range []int{-1, 101} {
			w := w
			_, err := e.SetNodeHealth("172.22.49.147", NodeHealth{Weight: &w})
			var ferr *Error
			if !errors.As(err, &ferr) || ferr.Path() != "weight" {
				t.Fatalf("weight %d: %v", w, err)
			}
		}
		if found, err := e.SetNodeHealth("172.22.49.147", NodeHealth{}); err != nil || !found {
			t.Fatal(found, err)
		}
		if after, _ := e.Entries(); !reflect.DeepEqual(after, before) {
			t.Fatalf("%v: cleared, the entries are not the snapshot's own", sel)
		}
	}
}
