package egressgw

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const header = "../../include/egress_gateway.h"

// Every EGRESS_RESULT_* of the header has its Go code, name and sentinel, and nothing else
// does: the Go values cannot drift from the C ones.
func TestSentinelsMatchTheHeadersResultCodes(t *testing.T) {
	text := string(readFile(t, header))
	found := regexp.MustCompile(`(?m)^\s*EGRESS_RESULT_([A-Z0-9_]+) = (\d+),`).FindAllStringSubmatch(text, -1)
	if len(found) < 13 {
		t.Fatalf("found %d result codes in %s", len(found), header)
	}
	if len(found) != len(results) {
		t.Fatalf("the header has %d result codes, the Go table %d", len(found), len(results))
	}
	seen := map[error]bool{}
	for _, m := range found {
		value, _ := strconv.Atoi(m[2])
		if value >= len(results) || results[value].code != Result(value) {
			t.Fatalf("EGRESS_RESULT_%s = %d has no Go entry", m[1], value)
		}
		r := results[value]
		if r.name != m[1] || Result(value).String() != m[1] {
			t.Errorf("code %d: header EGRESS_RESULT_%s, Go %q", value, m[1], r.name)
		}
		if value == 0 {
			if r.sentinel != nil {
				t.Errorf("OK has a sentinel")
			}
			continue
		}
		if r.sentinel == nil || seen[r.sentinel] {
			t.Fatalf("EGRESS_RESULT_%s: missing or shared sentinel", m[1])
		}
		seen[r.sentinel] = true
		err := error(&Error{Code: Result(value)})
		for _, other := range results[1:] {
			if errors.Is(err, other.sentinel) != (other.code == Result(value)) {
				t.Errorf("errors.Is(code %d, sentinel of %d) is wrong", value, other.code)
			}
		}
		if errors.Is(err, ErrClosed) {
			t.Errorf("code %d is ErrClosed", value)
		}
	}
	// The named constants are the header's values.
	for name, code := range map[string]Result{
		"OK": ResultOK, "PANIC": ResultPanic, "NULL_PARAMETER": ResultNullParameter,
		"INVALID_UTF8": ResultInvalidUTF8, "INVALID_ENUM": ResultInvalidEnum,
		"INSUFFICIENT_SIZE": ResultInsufficientSize, "PARSE": ResultParse, "INPUT": ResultInput,
		"POLICY": ResultPolicy, "CAPACITY": ResultCapacity, "DECODE": ResultDecode,
		"INVALID_ARGUMENT": ResultInvalidArgument, "KERNEL": ResultKernel,
	} {
		if !strings.Contains(text, fmt.Sprintf("EGRESS_RESULT_%s = %d,", name, code)) {
			t.Errorf("Result%s = %d is not the header's", name, code)
		}
	}
}

// The library the package links is the one the header describes.
func TestTheLibraryIsTheHeadersVersion(t *testing.T) {
	text := string(readFile(t, header))
	var parts []string
	for _, part := range []string{"MAJOR", "MINOR", "PATCH"} {
		m := regexp.MustCompile(`#define EGRESS_VERSION_` + part + ` (\d+)`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no EGRESS_VERSION_%s in the header", part)
		}
		parts = append(parts, m[1])
	}
	if want := strings.Join(parts, "."); Version() != want {
		t.Fatalf("library %s, header %s", Version(), want)
	}
}

// An invalid policy: every field error with its path, errors.Is/As, and the engine as it
// was.
func TestAnInvalidPolicyGivesEveryFieldErrorAndChangesNothing(t *testing.T) {
	e := seedEngine(t, Config{})
	before, _ := e.MapsJSON()
	err := e.UpsertPolicy([]byte(`{"apiVersion": "cilium.io/v2", "kind": "CiliumEgressGatewayPolicy",
		"metadata": {"name": "egress-nginx"},
		"spec": {"destinationCIDRs": ["10.0.0.0/99"], "bogus": 1}}`))
	if !errors.Is(err, ErrPolicy) || errors.Is(err, ErrInput) {
		t.Fatalf("want ErrPolicy, got %v", err)
	}
	var pe *PolicyError
	if !errors.As(err, &pe) {
		t.Fatalf("not a *PolicyError: %T", err)
	}
	if pe.Policy != "egress-nginx" || len(pe.Fields) < 3 || pe.Path() != pe.Fields[0].Path {
		t.Fatalf("policy %q, fields %v, path %q", pe.Policy, pe.Fields, pe.Path())
	}
	paths := map[string]bool{}
	for _, f := range pe.Fields {
		paths[f.Path] = true
		if f.Reason == "" {
			t.Errorf("%s: empty reason", f.Path)
		}
		if !strings.Contains(err.Error(), f.Path+": "+f.Reason) {
			t.Errorf("the message %q lacks %s", err, f)
		}
	}
	if !paths["spec.destinationCIDRs[0]"] || !paths["spec.bogus"] {
		t.Fatalf("paths %v", paths)
	}
	var base *Error
	if !errors.As(err, &base) || base.Code != ResultPolicy || len(base.Fields) != len(pe.Fields) {
		t.Fatalf("errors.As *Error: %+v", base)
	}
	after, _ := e.MapsJSON()
	if string(after) != string(before) {
		t.Fatal("a rejected policy changed the maps")
	}
	// The seed's policy, valid, replaced by an invalid version: the old version stays.
	err = e.UpsertPolicy([]byte("apiVersion: cilium.io/v2\nkind: CiliumEgressGatewayPolicy\nmetadata: {name: egress-test}\nspec: {destinationCIDRs: [bogus]}\n"))
	if !errors.As(err, &pe) || pe.Policy != "egress-test" {
		t.Fatalf("want a PolicyError for egress-test: %v", err)
	}
	if after, _ := e.MapsJSON(); string(after) != string(before) {
		t.Fatal("a rejected update replaced the policy in force")
	}
}

func TestLoadingErrors(t *testing.T) {
	seed := readFile(t, filepath.Join(examplesDir(t), "seed-gateway-group.yaml"))
	var ge *Error

	_, err := FromSnapshot(seed, Config{LocalNode: "no-such-node"})
	if !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ge) || ge.Path() != "config.local_node" {
		t.Fatalf("unknown node: %v", err)
	}
	_, err = FromSnapshot([]byte("nodes: ["), Config{})
	if !errors.Is(err, ErrParse) || !errors.As(err, &ge) || ge.Path() != "" || len(ge.Fields) != 0 {
		t.Fatalf("unparsable: %v", err)
	}
	_, err = FromSnapshot([]byte("nodes: [{name: a, ipv4: fd00::1}]\nextra: 1\n"), Config{LocalNode: "a"})
	if !errors.Is(err, ErrInput) || !errors.As(err, &ge) {
		t.Fatalf("bad input: %v", err)
	}
	if len(ge.Fields) != 2 || ge.Fields[0].Path != "extra" || ge.Fields[1].Path != "nodes[0].ipv4" {
		t.Fatalf("fields %v", ge.Fields)
	}
	_, err = FromSnapshot(seed, Config{Selection: 7})
	if !errors.Is(err, ErrInvalidEnum) {
		t.Fatalf("selection 7: %v", err)
	}
	_, err = FromSnapshot(seed, Config{Layout: 9})
	if !errors.Is(err, ErrInvalidEnum) {
		t.Fatalf("layout 9: %v", err)
	}
	if _, err = NewEngine(Config{}); !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ge) || ge.Path() != "config.local_node" {
		t.Fatalf("no local node: %v", err)
	}
	_, err = FromSnapshot([]byte("localNode: \xff\xfe\n"), Config{})
	if !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("not UTF-8: %v", err)
	}
}

func TestEventErrorsNameTheirFields(t *testing.T) {
	e := seedEngine(t, Config{})
	before, _ := e.MapsJSON()
	var ge *Error
	err := e.UpsertNode([]byte(`{"name": "n1", "ipv4": "not-an-ip"}`))
	if !errors.Is(err, ErrInput) || !errors.As(err, &ge) || ge.Path() != "ipv4" {
		t.Fatalf("node: %v", err)
	}
	err = e.UpsertEndpointJSON([]byte(`{"uid": "u1", "ips": ["10.0.0.1", "x"]}`))
	if !errors.Is(err, ErrInput) || !errors.As(err, &ge) || ge.Path() != "ips[1]" {
		t.Fatalf("endpoint JSON: %v", err)
	}
	err = e.UpsertEndpoint(Endpoint{IPs: nil})
	if !errors.Is(err, ErrInput) && !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ge) || ge.Path() != "endpoint.uid" {
		t.Fatalf("endpoint without uid: %v", err)
	}
	err = e.UpsertEndpoint(Endpoint{UID: "u2", IPs: []netipAddr{mustAddr("10.1.1.1"), {}}})
	if !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ge) || ge.Path() != "endpoint.ips[1]" {
		t.Fatalf("zero address: %v", err)
	}
	err = e.UpsertEndpoint(Endpoint{UID: "u3", Labels: map[string]string{"app\xff": "v"}, IPs: []netipAddr{mustAddr("10.1.1.2")}})
	if !errors.Is(err, ErrInvalidUTF8) || !errors.As(err, &ge) || ge.Path() != "endpoint.labels[0].key" {
		t.Fatalf("label key not UTF-8: %v", err)
	}
	err = e.SetDevices([]byte(`[{"name": "eth0", "index": "two"}]`))
	if !errors.Is(err, ErrInput) || !errors.As(err, &ge) || ge.Path() != "interfaces[0].index" {
		t.Fatalf("devices: %v", err)
	}
	err = e.UpsertPolicy([]byte("apiVersion: v1\nkind: List\nitems: []\n"))
	if !errors.Is(err, ErrParse) {
		t.Fatalf("text without a policy: %v", err)
	}
	if after, _ := e.MapsJSON(); string(after) != string(before) {
		t.Fatal("a refused event changed the maps")
	}
	if _, err := e.Lookup(netipAddr{}, mustAddr("1.1.1.1")); !errors.Is(err, ErrInvalidArgument) || !errors.As(err, &ge) || ge.Path() != "src" {
		t.Fatalf("lookup of the zero address: %v", err)
	}
	if _, err := e.Explain(mustAddr("1.1.1.1"), netipAddr{}); !errors.As(err, &ge) || ge.Path() != "dst" {
		t.Fatalf("explain of the zero address: %v", err)
	}
}

// A closed engine refuses every call with ErrClosed; Close is idempotent.
func TestAClosedEngine(t *testing.T) {
	e := seedEngine(t, Config{})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	a := mustAddr("172.22.48.4")
	calls := map[string]error{}
	_, calls["Lookup"] = e.Lookup(a, a)
	_, calls["MapsJSON"] = e.MapsJSON()
	_, calls["Entries"] = e.Entries()
	_, calls["Explain"] = e.Explain(a, a)
	_, calls["ConflictsJSON"] = e.ConflictsJSON()
	_, calls["Stats"] = e.Stats()
	_, calls["TakePlan"] = e.TakePlan()
	calls["Ack"] = e.Ack(Plan{}, 0)
	calls["Adopt"] = e.Adopt(nil)
	calls["UpsertPolicy"] = e.UpsertPolicy([]byte("x: 1"))
	_, calls["DeletePolicy"] = e.DeletePolicy("x")
	calls["UpsertNode"] = e.UpsertNode([]byte("{}"))
	_, calls["DeleteNode"] = e.DeleteNode("x")
	calls["UpsertEndpoint"] = e.UpsertEndpoint(Endpoint{UID: "u"})
	calls["UpsertEndpointJSON"] = e.UpsertEndpointJSON([]byte("{}"))
	_, calls["DeleteEndpoint"] = e.DeleteEndpoint("u")
	calls["UpsertNamespace"] = e.UpsertNamespace("ns", nil)
	calls["UpsertNamespaceJSON"] = e.UpsertNamespaceJSON([]byte("{}"))
	calls["SetDevices"] = e.SetDevices([]byte("[]"))
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s on a closed engine: %v", name, err)
		}
	}
}

// A kernel errno is reachable through errors.Is (the *Error unwraps to it).
func TestAnErrnoUnwraps(t *testing.T) {
	err := error(&Error{Code: ResultKernel, Message: "open: No such file or directory", Errno: syscall.ENOENT})
	if !errors.Is(err, ErrKernel) || !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("%v does not match ErrKernel, fs.ErrNotExist and ENOENT", err)
	}
}
