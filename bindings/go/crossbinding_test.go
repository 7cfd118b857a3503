package egressgw

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The cross-binding table (tests/cross-binding/table.txt) through the Go package: its
// transcript must equal tests/cross-binding/expected.txt, as the Rust, C and Python runs
// must.
func TestTheCrossBindingTable(t *testing.T) {
	dir := filepath.Join("..", "..", "tests", "cross-binding")
	table := string(readFile(t, filepath.Join(dir, "table.txt")))
	want := string(readFile(t, filepath.Join(dir, "expected.txt")))
	got := runCrossBinding(t, table)
	if got != want {
		w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
		for i := 0; i < len(w) && i < len(g); i++ {
			if w[i] != g[i] {
				t.Fatalf("line %d differs from expected.txt:\n- %s\n+ %s", i+1, w[i], g[i])
			}
		}
		t.Fatalf("%d lines expected, %d written", len(w), len(g))
	}
}

func crossField(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func crossItems(s string) []string {
	var out []string
	for _, x := range strings.Split(crossField(s), ",") {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

func crossLabels(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range crossItems(s) {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// crossError is the first field error, without the package's own argument name
// ("endpoint.") that the table leaves out.
func crossError(t *testing.T, err error) string {
	var ge *Error
	if !errors.As(err, &ge) || len(ge.Fields) == 0 {
		t.Fatalf("an error without a field: %v", err)
	}
	return fmt.Sprintf("error %s %s", strings.TrimPrefix(ge.Fields[0].Path, "endpoint."), ge.Fields[0].Reason)
}

func crossVerdict(v Verdict) string {
	gateway, egress, ifindex := "-", "-", "-"
	if v.GatewayIP.IsValid() {
		gateway = v.GatewayIP.String()
	}
	if v.Kind == VerdictMasquerade {
		egress, ifindex = v.EgressIP.String(), strconv.Itoa(int(v.Ifindex))
	}
	return fmt.Sprintf("verdict %s %s %s %s", v.Kind, gateway, egress, ifindex)
}

func crossEndpointJSON(args []string) []byte {
	doc := map[string]any{"uid": crossField(args[0]), "namespace": crossField(args[1]),
		"node": crossField(args[2]), "ips": crossItems(args[3]), "labels": crossLabels(args[4])}
	b, _ := json.Marshal(doc)
	return b
}

func runCrossBinding(t *testing.T, table string) string {
	seed := readFile(t, filepath.Join(examplesDir(t), "seed-gateway-group.yaml"))
	engine, err := FromSnapshot(seed, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	other, err := FromSnapshot(seed, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	plans := map[string]Plan{}
	var out strings.Builder
	for _, line := range strings.Split(table, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		words := strings.Split(line, " ")
		op, args := words[0], words[1:]
		addr := func(i int) netip.Addr { return netip.MustParseAddr(args[i]) }
		var result string
		var err error
		switch op {
		case "lookup":
			var v Verdict
			if v, err = engine.Lookup(addr(0), addr(1)); err == nil {
				result = crossVerdict(v)
			}
		case "explain":
			var doc []byte
			if doc, err = engine.Explain(addr(0), addr(1)); err == nil {
				var x struct {
					Source  string `json:"source"`
					Verdict struct {
						Kind string `json:"kind"`
					} `json:"verdict"`
					SourceEntries int `json:"sourceEntries"`
				}
				if err := json.Unmarshal(doc, &x); err != nil {
					t.Fatal(err)
				}
				result = fmt.Sprintf("explain %s %s %d", x.Source, x.Verdict.Kind, x.SourceEntries)
			}
		case "endpoint":
			ep := Endpoint{UID: crossField(args[0]), Namespace: crossField(args[1]), Node: crossField(args[2]), Labels: crossLabels(args[4])}
			for _, ip := range crossItems(args[3]) {
				ep.IPs = append(ep.IPs, netip.MustParseAddr(ip))
			}
			if err = engine.UpsertEndpoint(ep); err == nil {
				result = "ok"
			}
		case "endpoint-doc":
			if err = engine.UpsertEndpointJSON(crossEndpointJSON(args)); err == nil {
				result = "ok"
			}
		case "namespace":
			if err = engine.UpsertNamespace(args[0], crossLabels(args[1])); err == nil {
				result = "ok"
			}
		case "take", "take-other":
			from := engine
			if op == "take-other" {
				from = other
			}
			plan, err := from.TakePlan()
			if err != nil {
				t.Fatal(err)
			}
			plans[args[0]] = plan
			result = fmt.Sprintf("plan %d", plan.Len())
		case "ack":
			plan := plans[args[0]]
			applied := plan.Len()
			if args[1] != "all" {
				applied, _ = strconv.Atoi(args[1])
			}
			if err = engine.Ack(plan, applied); err == nil {
				result = "ok"
			}
		case "adopt-empty":
			if err = engine.Adopt(nil); err == nil {
				result = "ok"
			}
		case "stats":
			s, err := engine.Stats()
			if err != nil {
				t.Fatal(err)
			}
			result = fmt.Sprintf("stats %d %d %d %d", s.DesiredV4, s.DesiredV6, s.ProgrammedV4, s.ProgrammedV6)
		default:
			t.Fatalf("unknown step %q", op)
		}
		if err != nil {
			result = crossError(t, err)
		}
		fmt.Fprintf(&out, "%s\n=> %s\n", line, result)
	}
	return out.String()
}
