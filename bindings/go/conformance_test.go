package egressgw

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every example on every Cilium version (Config.CiliumVersion) gives that version's
// expected maps, in both modes, byte for byte.
func TestEveryExampleOnEveryCiliumVersion(t *testing.T) {
	examples, err := filepath.Glob(filepath.Join(examplesDir(t), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, example := range examples {
		stem := strings.TrimSuffix(example, ".yaml")
		for _, version := range []struct {
			v     CiliumVersion
			infix string
		}{{CiliumV1_18, ""}, {CiliumV1_19, ".cilium-1.19"}, {CiliumV1_20, ".cilium-1.20"}} {
			for _, mode := range []struct {
				selection Selection
				infix     string
			}{{SelectionCilium, ""}, {SelectionConsistent, ".consistent"}} {
				want, err := os.ReadFile(stem + mode.infix + version.infix + ".expected.json")
				if os.IsNotExist(err) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				e, err := FromSnapshot(readFile(t, example), Config{Selection: mode.selection, CiliumVersion: version.v})
				if err != nil {
					t.Fatal(err)
				}
				got, err := e.MapsJSON()
				e.Close()
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Fatalf("%s %s %s: maps JSON differs\ngot:\n%s", filepath.Base(stem), version.v, mode.selection, got)
				}
				compared++
			}
		}
	}
	if compared < 27 {
		t.Fatalf("only %d expected files compared", compared)
	}
	if _, err := FromSnapshot(readFile(t, examples[0]), Config{CiliumVersion: 3}); !errors.Is(err, ErrInvalidEnum) {
		t.Fatalf("CiliumVersion 3: %v", err)
	}
}

// Every example snapshot through FromSnapshot gives exactly the maps `egressctl list -o
// json` prints (the *.expected.json files), in both modes.
func TestEveryExampleGivesTheExpectedMaps(t *testing.T) {
	dir := examplesDir(t)
	examples, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 6 {
		t.Fatalf("%d example snapshots in %s: the test needs them", len(examples), dir)
	}
	compared := 0
	for _, example := range examples {
		stem := strings.TrimSuffix(example, ".yaml")
		for _, mode := range []struct {
			selection Selection
			suffix    string
		}{{SelectionCilium, ".expected.json"}, {SelectionConsistent, ".consistent.expected.json"}} {
			t.Run(filepath.Base(stem)+"/"+mode.selection.String(), func(t *testing.T) {
				e, err := FromSnapshot(readFile(t, example), Config{Selection: mode.selection})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				got, err := e.MapsJSON()
				if err != nil {
					t.Fatal(err)
				}
				want, err := os.ReadFile(stem + mode.suffix)
				if os.IsNotExist(err) {
					// No expected file for this mode: the document still has its shape.
					var doc map[string]json.RawMessage
					if err := json.Unmarshal(got, &doc); err != nil || len(doc) != 2 || doc["ipv4"] == nil || doc["ipv6"] == nil {
						t.Fatalf("maps JSON is not {ipv4, ipv6}: %v: %s", err, got)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				compared++
				if string(got) != string(want) {
					t.Fatalf("maps JSON differs from %s\ngot:\n%s", filepath.Base(stem+mode.suffix), got)
				}
			})
		}
	}
	if compared < 8 {
		t.Fatalf("only %d expected files compared", compared)
	}
}

// A real cluster's dump, a node named on the side and its devices set afterwards.
func TestADumpWithANodeAndItsDevices(t *testing.T) {
	dumps := filepath.Join(examplesDir(t), "dumps")
	e, err := FromSnapshot(readFile(t, filepath.Join(dumps, "tke-dump.yaml")), Config{LocalNode: "172.22.49.119"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.SetDevices(readFile(t, filepath.Join(dumps, "tke-dump.172.22.49.119.devices.yaml"))); err != nil {
		t.Fatal(err)
	}
	got, err := e.MapsJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := readFile(t, filepath.Join(dumps, "tke-dump.172.22.49.119.expected.json")); string(got) != string(want) {
		t.Fatalf("maps JSON differs from the dump's expected maps:\n%s", got)
	}
}

// B.10 through the Go package: the CiliumEndpoint dump, and the seed's gateway-group cluster
// as core Pods/Nodes and as CiliumEndpointSlices with CiliumIdentities, give their expected
// maps loaded (FromSnapshot) and applied as events to an empty engine (Apply), in both modes.
func TestEveryDumpShapeLoadedAndApplied(t *testing.T) {
	dumps := filepath.Join(examplesDir(t), "dumps")
	const node = "172.22.49.119"
	cases := []struct {
		stem      string
		selection Selection
		suffix    string
	}{
		{"tke-dump", SelectionCilium, ""},
		{"seed-gateway-group.pods", SelectionCilium, ""},
		{"seed-gateway-group.pods", SelectionConsistent, ".consistent"},
		{"seed-gateway-group.slices", SelectionCilium, ""},
		{"seed-gateway-group.slices", SelectionConsistent, ".consistent"},
	}
	for _, c := range cases {
		t.Run(c.stem+c.suffix, func(t *testing.T) {
			text := readFile(t, filepath.Join(dumps, c.stem+".yaml"))
			devices := readFile(t, filepath.Join(dumps, c.stem+"."+node+".devices.yaml"))
			want := readFile(t, filepath.Join(dumps, c.stem+"."+node+c.suffix+".expected.json"))
			loaded, err := FromSnapshot(text, Config{LocalNode: node, Selection: c.selection})
			if err != nil {
				t.Fatal(err)
			}
			defer loaded.Close()
			if err := loaded.SetDevices(devices); err != nil {
				t.Fatal(err)
			}
			if got, _ := loaded.MapsJSON(); string(got) != string(want) {
				t.Fatalf("loaded: maps differ from the expected maps:\n%s", got)
			}
			e, err := NewEngine(Config{LocalNode: node, Selection: c.selection})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			applied, err := e.Apply(text)
			if err != nil {
				t.Fatal(err)
			}
			if applied.Endpoints < 10 || applied.Nodes != 5 {
				t.Fatalf("applied: %+v", applied)
			}
			if err := e.SetDevices(devices); err != nil {
				t.Fatal(err)
			}
			if got, _ := e.MapsJSON(); string(got) != string(want) {
				t.Fatalf("applied: maps differ from the expected maps:\n%s", got)
			}
		})
	}
}

// Every load reports (SEMANTICS B.7): an invalid policy with all its errors, a dump's skipped
// endpoint, policy warnings and conflicts, as egressctl list prints them.
func TestEveryLoadReportsItsDiagnostics(t *testing.T) {
	dir := examplesDir(t)
	dump, err := FromSnapshot(readFile(t, filepath.Join(dir, "dumps", "tke-dump.yaml")), Config{LocalNode: "172.22.49.119"})
	if err != nil {
		t.Fatal(err)
	}
	defer dump.Close()
	d, err := dump.Diagnostics()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Skipped) != 1 || d.Skipped[0] != "objects[16] (default/nginx-7f6d8b9c5d-q4zkm): no status.identity labels: endpoint skipped" {
		t.Fatalf("skipped: %q", d.Skipped)
	}
	if len(d.InvalidPolicies) != 0 || len(d.Warnings) == 0 || !strings.HasPrefix(d.Warnings[0], "egress-test: spec.egressGateway: ignored:") {
		t.Fatalf("diagnostics of the dump: %+v", d)
	}
	text := string(readFile(t, filepath.Join(dir, "selectors-and-conflicts.yaml"))) +
		"- metadata: {name: broken}\n  spec: {selectors: [{nodeSelector: {}}], destinationCIDRs: [\"10.0.0.0/99\"]}\n"
	e, err := FromSnapshot([]byte(text), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	d, err = e.Diagnostics()
	if err != nil {
		t.Fatal(err)
	}
	want := InvalidPolicy{Policy: "broken", Errors: []FieldError{
		{"spec.selectors[0]", "Required value: podSelector or namespaceSelector"},
		{"spec.destinationCIDRs[0]", `Invalid value: "10.0.0.0/99": prefix length out of range`},
		{"spec.egressGateway", "Required value"},
	}}
	if len(d.InvalidPolicies) != 1 || d.InvalidPolicies[0].Policy != want.Policy || len(d.InvalidPolicies[0].Errors) != len(want.Errors) {
		t.Fatalf("invalid policies: %+v", d.InvalidPolicies)
	}
	for i, fe := range want.Errors {
		if d.InvalidPolicies[0].Errors[i] != fe {
			t.Errorf("error %d: %+v, want %+v", i, d.InvalidPolicies[0].Errors[i], fe)
		}
	}
	if len(d.Conflicts) == 0 {
		t.Fatal("the example's conflicts are reported")
	}
}

// Kubernetes objects applied as events give the maps the dump gives loaded at once; an
// invalid policy is counted and in the diagnostics, not an error; other input errors apply
// nothing.
func TestApplyKubernetesObjects(t *testing.T) {
	dumps := filepath.Join(examplesDir(t), "dumps")
	e, err := NewEngine(Config{LocalNode: "172.22.49.119"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	applied, err := e.Apply(readFile(t, filepath.Join(dumps, "tke-dump.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if applied.Policies != 1 || applied.Nodes != 5 || applied.Endpoints == 0 || applied.Namespaces == 0 || applied.InvalidPolicies != 0 || applied.Skipped != 1 {
		t.Fatalf("applied: %+v", applied)
	}
	if err := e.SetDevices(readFile(t, filepath.Join(dumps, "tke-dump.172.22.49.119.devices.yaml"))); err != nil {
		t.Fatal(err)
	}
	got, _ := e.MapsJSON()
	if want := readFile(t, filepath.Join(dumps, "tke-dump.172.22.49.119.expected.json")); string(got) != string(want) {
		t.Fatalf("maps JSON of the applied dump differs from its expected maps:\n%s", got)
	}
	broken := []byte("{apiVersion: cilium.io/v2, kind: CiliumEgressGatewayPolicy, metadata: {name: broken}, spec: {selectors: [], destinationCIDRs: []}}")
	if applied, err = e.Apply(broken); err != nil || applied.InvalidPolicies != 1 || applied.Policies != 0 {
		t.Fatalf("an invalid policy: %+v, %v", applied, err)
	}
	d, _ := e.Diagnostics()
	if len(d.InvalidPolicies) != 1 || d.InvalidPolicies[0].Policy != "broken" || len(d.Skipped) != 1 {
		t.Fatalf("diagnostics after apply: %+v", d)
	}
	if _, err := e.Apply([]byte("kind: [unclosed")); !errors.Is(err, ErrParse) {
		t.Fatalf("unparsable: %v", err)
	}
	if after, _ := e.MapsJSON(); string(after) != string(got) {
		t.Fatal("a refused apply changed the maps")
	}
}
