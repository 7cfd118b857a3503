// Package agent is egress-agent's core: one node's egressgw.Engine fed the cluster's objects
// as events and CNI ADD/DEL/CHECK, programming the node's maps after each, behind the local
// API of package api. Nothing is programmed before the cluster's first full list has arrived
// (POST /v1/objects?sync=1, as Cilium waits for its caches): a restarted agent adopts what its
// maps hold and writes only the difference once it knows the cluster again.
package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"egresscni/api"
	"egresscni/health"

	"egressgw"
)

// Programmer writes an engine's pending plan to the node's maps and acknowledges what it
// wrote.
type Programmer interface {
	// Program writes e's plan and acknowledges it; the number of map writes.
	Program(e *egressgw.Engine) (int, error)
	// Describe names where the maps are ("pinned in /sys/fs/bpf/tc/globals").
	Describe() string
}

// PlanOnly acknowledges plans without writing them anywhere: an agent without kernel maps
// (tests, a dry run). Its Describe says so.
type PlanOnly struct{}

// Program takes e's plan and acknowledges all of it.
func (PlanOnly) Program(e *egressgw.Engine) (int, error) {
	plan, err := e.TakePlan()
	if err != nil {
		return 0, err
	}
	if plan.Len() == 0 {
		return 0, nil
	}
	return plan.Len(), e.Ack(plan, plan.Len())
}

// Describe says no kernel map is written.
func (PlanOnly) Describe() string { return "none (plans acknowledged, nothing written)" }

// ProgramOn says when an agent programs a pod of its own node.
type ProgramOn int

const (
	// ProgramOnCNI programs the pod inside CNI ADD, before it starts (SEMANTICS B.4; the
	// default).
	ProgramOnCNI ProgramOn = iota
	// ProgramOnWatch programs it only when its object with its addresses comes back through
	// the cluster stream, as Cilium does (its egress gateway manager learns every endpoint,
	// its own node's too, from the CiliumEndpoint watch): the pod may send before its entries
	// exist. For comparison (egress-lab new-pods).
	ProgramOnWatch
)

func (p ProgramOn) String() string {
	switch p {
	case ProgramOnCNI:
		return "cni"
	case ProgramOnWatch:
		return "watch"
	}
	return fmt.Sprintf("ProgramOn(%d)", int(p))
}

// Publisher takes what an agent tells the cluster (package api: a pod's object with its
// addresses, a gateway's Ack).
type Publisher interface {
	Publish(objects []map[string]any) error
}

// Options are an agent's deployment choices. The zero value programs in CNI ADD and tells
// the cluster nothing.
type Options struct {
	ProgramOn ProgramOn
	// Publisher, when set, is told each pod CNI ADD gave addresses to, and everything this
	// node serves as a gateway whenever that changes (an api.Ack).
	Publisher Publisher
	// GatewayAckTimeout, when positive, makes CNI ADD wait until every other node its pod's
	// entries name as gateway has acknowledged serving the pod (Cilium's SyncBuildEndpoint,
	// across nodes), failing with "try again later" after it. Needs Publisher (the gateways
	// learn the pod's addresses from the cluster) and ProgramOnCNI.
	GatewayAckTimeout time.Duration
}

// sandboxRecord is what CNI said of one pod: the sandbox it was last added in, the
// addresses that ADD gave it (authoritative while the sandbox lives: a Pod event may lag
// behind a new sandbox), and whether DEL tore that sandbox down.
type sandboxRecord struct {
	Sandbox  string   `json:"sandbox"`
	IPs      []string `json:"ips"`
	TornDown bool     `json:"tornDown,omitempty"`
}

// Agent is one node's state. Safe for concurrent use: requests are served one at a time.
type Agent struct {
	mu     sync.Mutex
	node   string
	engine *egressgw.Engine
	maps   Programmer
	synced bool
	// The cluster's Pod objects by namespace/name, as last applied (ADD takes labels from
	// them).
	pods map[string]map[string]any
	// What CNI said of each pod, by uid; kept in statePath (when set) so that a restarted
	// agent still knows which sandbox is current and which pods are torn down.
	records   map[string]*sandboxRecord
	statePath string
	// Whether the last programming failed: CHECK says so until one succeeds.
	failed     error
	programmed int
	opts       Options
	// What this node serves as a gateway; whether that changed since it was last published
	// (or its publication failed); the last Ack's sequence number.
	served map[api.Served]bool
	dirty  bool
	ackSeq uint64
	// What the cluster's gateways serve, from each node's latest Ack.
	acked map[string]api.Ack
	// Closed and replaced when what the waiting ADDs look at may have changed (an Ack, a
	// programming).
	ackSignal chan struct{}
	// What operators said of nodes' health, and which nodes the probes find unready.
	operator map[string]api.NodeHealthRequest
	unready  map[string]bool
}

// New is an agent for node, its engine and maps, without persistent state (tests).
func New(node string, engine *egressgw.Engine, maps Programmer) *Agent {
	return &Agent{
		node:      node,
		engine:    engine,
		maps:      maps,
		pods:      map[string]map[string]any{},
		records:   map[string]*sandboxRecord{},
		served:    map[api.Served]bool{},
		acked:     map[string]api.Ack{},
		ackSignal: make(chan struct{}),
		operator:  map[string]api.NodeHealthRequest{},
		unready:   map[string]bool{},
	}
}

// OptionError is an option Configure refuses: Field names it as Options does.
type OptionError struct {
	Field   string
	Message string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Message }

// Check refuses options that contradict each other, naming the field (an *OptionError).
func (o Options) Check() error {
	if o.ProgramOn != ProgramOnCNI && o.ProgramOn != ProgramOnWatch {
		return &OptionError{"ProgramOn", fmt.Sprintf("Unsupported value: %v: supported values: \"cni\", \"watch\"", o.ProgramOn)}
	}
	if o.GatewayAckTimeout < 0 {
		return &OptionError{"GatewayAckTimeout", fmt.Sprintf("Invalid value: %v: must not be negative", o.GatewayAckTimeout)}
	}
	if o.GatewayAckTimeout > 0 && o.Publisher == nil {
		return &OptionError{"GatewayAckTimeout", "needs a Publisher (the cluster): the gateways learn the pod's addresses from it"}
	}
	if o.GatewayAckTimeout > 0 && o.ProgramOn != ProgramOnCNI {
		return &OptionError{"GatewayAckTimeout", "needs ProgramOn cni: with watch, ADD programs nothing to wait for"}
	}
	return nil
}

// Configure sets the agent's options (before it serves).
func (a *Agent) Configure(o Options) error {
	if err := o.Check(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.opts = o
	return nil
}

// NewWithState is New keeping what CNI said of each pod in statePath (a file; read when it
// exists, rewritten atomically on each change). Put it on a tmpfs that lives as long as the
// node's pods (/run).
func NewWithState(node string, engine *egressgw.Engine, maps Programmer, statePath string) (*Agent, error) {
	a := New(node, engine, maps)
	a.statePath = statePath
	body, err := os.ReadFile(statePath)
	if errors.Is(err, os.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &a.records); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath, err)
	}
	if a.records == nil {
		a.records = map[string]*sandboxRecord{}
	}
	return a, nil
}

// save writes the records (when the agent keeps state).
func (a *Agent) save() error {
	if a.statePath == "" {
		return nil
	}
	body, err := json.Marshal(a.records)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.statePath), 0o700); err != nil {
		return err
	}
	tmp := a.statePath + ".tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.statePath)
}

// Engine is the agent's engine (for queries; events go through the agent).
func (a *Agent) Engine() *egressgw.Engine { return a.engine }

func badRequest(path, format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusBadRequest, Path: path, Message: fmt.Sprintf(format, args...)}
}

func unavailable(format string, args ...any) *api.Error {
	return &api.Error{Status: http.StatusServiceUnavailable, Message: fmt.Sprintf(format, args...)}
}

// program writes the engine's plan (after the first sync only). A kernel failure or a lack of
// memory is "try again later" (503: what was not written comes back in the next plan); a map
// too small or maps of another layout are not (500: retrying cannot help).
func (a *Agent) program() (int, error) {
	if !a.synced {
		return 0, nil
	}
	n, err := a.maps.Program(a.engine)
	a.programmed += n
	a.failed = err
	if err == nil {
		a.wake()
		if a.opts.Publisher != nil {
			return n, a.updateServed()
		}
		return n, nil
	}
	msg := fmt.Sprintf("programming the maps (%s) failed: %v", a.maps.Describe(), err)
	if errors.Is(err, egressgw.ErrCapacity) || errors.Is(err, egressgw.ErrInvalidArgument) {
		return n, &api.Error{Status: http.StatusInternalServerError, Message: msg}
	}
	return n, unavailable("%s", msg)
}

// Objects applies Kubernetes objects (JSON: one object, a List, or an array) as events;
// sync marks the cluster's first full list as complete, which starts programming. A refused
// batch changes nothing, the agent's Pod cache included. Gateways' Acks (api.AckKind) are
// read, not applied. With a publisher, everything this node serves as a gateway is published
// after programming when it changed (a failure to publish is a warning: it is published
// again by the next change and by the agent's retry).
func (a *Agent) Objects(body []byte, sync bool) (api.Applied, error) {
	objects, err := splitObjects(body)
	if err != nil {
		return api.Applied{}, err
	}
	applied, err := a.objects(objects, sync)
	if perr := a.PublishServed(); perr != nil {
		applied.Warnings = append(applied.Warnings, perr.Error())
	}
	return applied, err
}

func (a *Agent) objects(objects []map[string]any, sync bool) (api.Applied, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := make([]map[string]any, 0, len(objects))
	var pods []map[string]any
	var acks []api.Ack
	for i, obj := range objects {
		switch kind(obj) {
		case api.AckKind:
			ack, err := readAck(obj, i)
			if err != nil {
				return api.Applied{}, err
			}
			acks = append(acks, ack)
			continue
		case "Pod":
			pods = append(pods, obj)
			if !a.podApplies(obj) {
				continue
			}
		}
		kept = append(kept, obj)
	}
	var applied api.Applied
	if len(kept) > 0 {
		text, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": kept})
		if err != nil {
			return applied, err
		}
		got, err := a.engine.Apply(text)
		if err != nil {
			return applied, inputError(err)
		}
		applied = api.Applied{
			Policies: got.Policies, Nodes: got.Nodes, Endpoints: got.Endpoints,
			Namespaces: got.Namespaces, InvalidPolicies: got.InvalidPolicies, Skipped: got.Skipped,
		}
	}
	// Applied: the Pod objects are the cache's now (a torn-down pod's too: its next ADD
	// takes its labels from here), the Acks the view of what the gateways serve.
	for _, obj := range pods {
		if key := objectKey(obj); key != "" {
			a.pods[key] = obj
		}
	}
	a.takeAcks(acks)
	if sync {
		a.synced = true
	}
	var err error
	applied.Programmed, err = a.program()
	return applied, err
}

// readAck reads objects[i], an Ack.
func readAck(obj map[string]any, i int) (api.Ack, error) {
	var ack api.Ack
	body, err := json.Marshal(obj["spec"])
	if err == nil {
		err = json.Unmarshal(body, &ack)
	}
	if err != nil {
		return ack, badRequest(fmt.Sprintf("items[%d].spec", i), "Invalid value: %v", err)
	}
	if ack.Node == "" {
		return ack, badRequest(fmt.Sprintf("items[%d].spec.node", i), "Required value: the acknowledging node")
	}
	for j, pair := range ack.Served {
		for _, field := range [][2]string{{"source", pair.Source}, {"gateway", pair.Gateway}} {
			if _, err := netip.ParseAddr(field[1]); err != nil {
				return ack, badRequest(fmt.Sprintf("items[%d].spec.served[%d].%s", i, j, field[0]), "Invalid value: %q: not an IP address", field[1])
			}
		}
	}
	return ack, nil
}

// takeAcks records what the gateways say they serve (a node's Ack older than the one held is
// ignored), and wakes the ADDs waiting for it.
func (a *Agent) takeAcks(acks []api.Ack) {
	for _, ack := range acks {
		if held, ok := a.acked[ack.Node]; ok && held.Seq >= ack.Seq {
			continue
		}
		a.acked[ack.Node] = ack
	}
	if len(acks) > 0 {
		a.wake()
	}
}

// wake wakes the ADDs waiting for their gateways (they look again).
func (a *Agent) wake() {
	close(a.ackSignal)
	a.ackSignal = make(chan struct{})
}

// updateServed records what this node serves as a gateway now (dirty when it changed).
func (a *Agent) updateServed() error {
	entries, err := a.engine.Entries()
	if err != nil {
		return err
	}
	now := map[api.Served]bool{}
	for _, e := range entries {
		if e.EgressIP.IsValid() && !e.EgressIP.IsUnspecified() {
			now[api.Served{Source: e.Source.String(), Gateway: e.GatewayIP.String()}] = true
		}
	}
	if len(now) != len(a.served) {
		a.dirty = true
	} else {
		for pair := range now {
			if !a.served[pair] {
				a.dirty = true
				break
			}
		}
	}
	a.served = now
	return nil
}

// PublishServed tells the cluster everything this node serves as a gateway, when that changed
// since it last did or its last publication failed (called without the lock, after a change;
// egress-agent also calls it every few seconds, to retry). A failure leaves it to be
// published again.
func (a *Agent) PublishServed() error {
	a.mu.Lock()
	if !a.dirty || a.opts.Publisher == nil {
		a.mu.Unlock()
		return nil
	}
	// Ordered across restarts: a new agent's first Ack is newer than its predecessor's last
	// (microseconds: exact in every JSON reader's numbers, below 2^53).
	seq := uint64(time.Now().UnixMicro())
	if seq <= a.ackSeq {
		seq = a.ackSeq + 1
	}
	a.ackSeq = seq
	ack := api.Ack{Node: a.node, Seq: seq, Served: make([]api.Served, 0, len(a.served))}
	for pair := range a.served {
		ack.Served = append(ack.Served, pair)
	}
	sortServed(ack.Served)
	a.dirty = false
	publisher := a.opts.Publisher
	a.mu.Unlock()
	// Two publications may overtake each other: the receivers keep the newer.
	err := publisher.Publish([]map[string]any{api.AckObject(ack)})
	if err == nil {
		return nil
	}
	a.mu.Lock()
	a.dirty = true
	a.mu.Unlock()
	return fmt.Errorf("publishing what this node serves as a gateway (retried later): %w", err)
}

// publishServed is PublishServed after a change that succeeded: a failure is logged, not the
// change's error.
func (a *Agent) publishServed() {
	if err := a.PublishServed(); err != nil {
		log.Print(err)
	}
}

func sortServed(pairs []api.Served) {
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].Source != pairs[j].Source {
			return pairs[i].Source < pairs[j].Source
		}
		return pairs[i].Gateway < pairs[j].Gateway
	})
}

// podApplies says whether to apply a Pod object: not when CNI DEL tore its sandbox down; with
// the addresses ADD gave it while that sandbox lives (the object's status may lag behind).
func (a *Agent) podApplies(obj map[string]any) bool {
	rec, ok := a.records[objectUID(obj)]
	if !ok {
		return true
	}
	if rec.TornDown {
		return false
	}
	withIPs(obj, rec.IPs)
	return true
}

// Delete applies a deleted object. A Pod or CiliumEndpoint is named by its uid (a pod
// recreated under the same name is another pod).
func (a *Agent) Delete(req api.DeleteRequest) error {
	if err := a.delete(req); err != nil {
		return err
	}
	a.publishServed()
	return nil
}

func (a *Agent) delete(req api.DeleteRequest) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var err error
	switch req.Kind {
	case "Pod", "CiliumEndpoint":
		if req.UID == "" {
			return badRequest("uid", "Required value: the deleted %s's metadata.uid", req.Kind)
		}
		if req.Kind == "Pod" {
			key := req.Namespace + "/" + req.Name
			if obj, ok := a.pods[key]; ok && objectUID(obj) == req.UID {
				delete(a.pods, key)
			}
			if _, ok := a.records[req.UID]; ok {
				delete(a.records, req.UID)
				if err := a.save(); err != nil {
					return err
				}
			}
		}
		_, err = a.engine.DeleteEndpoint(req.UID)
	case "Node", "CiliumNode":
		_, err = a.engine.DeleteNode(req.Name)
	case "CiliumEgressGatewayPolicy":
		_, err = a.engine.DeletePolicy(req.Name)
	default:
		return badRequest("kind", "Unsupported value: %q: supported values: \"Pod\", \"CiliumEndpoint\", \"Node\", \"CiliumNode\", \"CiliumEgressGatewayPolicy\"", req.Kind)
	}
	if err != nil {
		return inputError(err)
	}
	_, err = a.program()
	return err
}

// NodeHealth sets what an operator says of a node (SEMANTICS B.3: ready, weight; nil keeps
// the node's objects' value), kept in the engine across the node's object events, then
// programs. The health probes' word (ProbeChanged) is kept apart: a node the probes find
// unready is unready whatever the operator says.
func (a *Agent) NodeHealth(req api.NodeHealthRequest) error {
	if req.Name == "" {
		return badRequest("name", "Required value: the node's name")
	}
	if err := a.setHealth(req.Name, &req, nil); err != nil {
		return err
	}
	a.publishServed()
	return nil
}

// ProbeChanged is the health probes' word on a node (egress-agent --probe-interval): unready,
// or ready again; then programs. What an operator said of the node stays.
func (a *Agent) ProbeChanged(node string, ready bool) {
	if err := a.setHealth(node, nil, &ready); err != nil {
		log.Printf("node %s %s by the probes: %v", node, map[bool]string{true: "ready", false: "unready"}[ready], err)
		return
	}
	log.Printf("node %s %s by the probes", node, map[bool]string{true: "ready again", false: "unready"}[ready])
	a.publishServed()
}

// ProbeTargets are the gateway nodes to probe: every node the policies may choose, whatever
// its health, but this one.
func (a *Agent) ProbeTargets() []health.Target {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Every round also retries a programming that failed (a probe's verdict is in the engine
	// already; the maps must follow).
	if a.failed != nil {
		if _, err := a.program(); err != nil {
			log.Printf("programming again: %v", err)
		}
	}
	nodes, err := a.engine.GatewayNodes()
	if err != nil {
		log.Printf("the gateway nodes: %v", err)
		return nil
	}
	out := make([]health.Target, 0, len(nodes))
	for _, n := range nodes {
		if n.Name != a.node && n.IPv4 != nil {
			out = append(out, health.Target{Name: n.Name, Addr: *n.IPv4})
		}
	}
	return out
}

// setHealth records the operator's request or the probes' verdict (whichever is given) and
// puts their sum in the engine: the probes' unready wins, the operator's weight stays.
func (a *Agent) setHealth(node string, operator *api.NodeHealthRequest, probedReady *bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	said := a.operator[node]
	if operator != nil {
		said = *operator
	}
	unready := a.unready[node]
	if probedReady != nil {
		unready = !*probedReady
	}
	h := egressgw.NodeHealth{Ready: said.Ready, Weight: said.Weight}
	if unready {
		no := false
		h.Ready = &no
	}
	if _, err := a.engine.SetNodeHealth(node, h); err != nil {
		return inputError(err)
	}
	if operator != nil {
		a.operator[node] = *operator
	}
	a.unready[node] = unready
	_, err := a.program()
	return err
}

// Add is CNI ADD: the pod's object (labels, uid) with the addresses the CNI result gave it,
// applied as an event and programmed before the answer (with ProgramOnWatch: only recorded).
// With a publisher, the pod's object with its addresses is told to the cluster; with a
// gateway acknowledgement timeout, the answer waits until the pod's gateways serve it.
func (a *Agent) Add(req api.AddRequest) (api.AddResponse, error) {
	if err := checkPod(req.Pod); err != nil {
		return api.AddResponse{}, err
	}
	ips, err := checkIPs(req.IPs)
	if err != nil {
		return api.AddResponse{}, err
	}
	resp, published, opts, err := a.add(req, ips)
	if err != nil || opts.Publisher == nil {
		return resp, err
	}
	if err := opts.Publisher.Publish(published); err != nil {
		return resp, unavailable("pod %s/%s: telling the cluster its addresses: %v: try again later", req.Pod.Namespace, req.Pod.Name, err)
	}
	// This node may be the pod's own gateway (or serve others).
	a.publishServed()
	if opts.GatewayAckTimeout > 0 {
		err = a.waitForGateways(req.Pod, ips, opts.GatewayAckTimeout)
	}
	return resp, err
}

// add is ADD's part under the lock: what to answer, and what to publish.
func (a *Agent) add(req api.AddRequest, ips []string) (api.AddResponse, []map[string]any, Options, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	opts := a.opts
	if !a.synced {
		return api.AddResponse{}, nil, opts, unavailable("the agent has not received the cluster's objects yet (no sync): try again later")
	}
	key := req.Pod.Namespace + "/" + req.Pod.Name
	cached, ok := a.pods[key]
	if !ok {
		return api.AddResponse{}, nil, opts, unavailable("pod %s is not known to the agent yet (its Pod object has not arrived): try again later", key)
	}
	uid := objectUID(cached)
	if req.Pod.UID != "" && req.Pod.UID != uid {
		return api.AddResponse{}, nil, opts, unavailable("pod %s: the agent knows uid %q, CNI_ARGS say %q (its new Pod object has not arrived): try again later", key, uid, req.Pod.UID)
	}
	obj := copyObject(cached)
	withIPs(obj, ips)
	if opts.ProgramOn == ProgramOnCNI {
		text, err := json.Marshal(obj)
		if err != nil {
			return api.AddResponse{}, nil, opts, err
		}
		if _, err := a.engine.Apply(text); err != nil {
			return api.AddResponse{}, nil, opts, inputError(err)
		}
	}
	a.records[uid] = &sandboxRecord{Sandbox: req.ContainerID, IPs: ips}
	if err := a.save(); err != nil {
		return api.AddResponse{}, nil, opts, unavailable("saving the agent's state: %v", err)
	}
	n, err := a.program()
	if err != nil {
		return api.AddResponse{}, nil, opts, err
	}
	entries, err := a.entriesOf(ips)
	if err != nil {
		return api.AddResponse{}, nil, opts, err
	}
	return api.AddResponse{UID: uid, Entries: entries, Programmed: n}, []map[string]any{obj}, opts, nil
}

// waitForGateways waits until every other node the pod's entries name as gateway has
// acknowledged serving the pod, or timeout.
func (a *Agent) waitForGateways(pod api.Pod, ips []string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		missing, err := a.unacknowledged(ips)
		signal := a.ackSignal
		a.mu.Unlock()
		if err != nil || len(missing) == 0 {
			return err
		}
		select {
		case <-signal:
		case <-deadline.C:
			return unavailable("pod %s/%s: gateway %s did not acknowledge serving %s within %v: try again later",
				pod.Namespace, pod.Name, strings.Join(missing, ", "), strings.Join(ips, ", "), timeout)
		}
	}
}

// excludedGateway is the gateway address of an excluded destination's entry.
var excludedGateway = netip.AddrFrom4([4]byte{0, 0, 0, 1})

// unacknowledged are the gateways (sorted) that the entries of ips name, that are other nodes
// and whose latest Ack does not say they serve them. An entry naming this node is left out:
// with an egress IP it is programmed already; without one (the lookup says "this node is the
// gateway but has no egress IP") the datapath drops the pod's traffic whatever anyone else
// does, as Cilium does.
func (a *Agent) unacknowledged(ips []string) ([]string, error) {
	entries, err := a.engine.Entries()
	if err != nil {
		return nil, err
	}
	served := map[api.Served]bool{}
	for _, ack := range a.acked {
		for _, pair := range ack.Served {
			served[pair] = true
		}
	}
	missing := map[string]bool{}
	for _, e := range entries {
		source := e.Source.String()
		if !contains(ips, source) || e.GatewayIP.IsUnspecified() || e.GatewayIP == excludedGateway {
			continue
		}
		if e.EgressIP.IsValid() && !e.EgressIP.IsUnspecified() {
			continue
		}
		// The entry's own verdict (its destination's first address; a narrower entry of the
		// same source starting there answers instead, see integrations/cni/README.md).
		verdict, err := a.engine.Lookup(e.Source, e.Destination.Addr())
		if err != nil {
			return nil, err
		}
		if verdict.Kind == egressgw.VerdictDropNoEgressIP {
			continue
		}
		if pair := (api.Served{Source: source, Gateway: e.GatewayIP.String()}); !served[pair] {
			missing[pair.Gateway] = true
		}
	}
	out := make([]string, 0, len(missing))
	for gw := range missing {
		out = append(out, gw)
	}
	sort.Strings(out)
	return out, nil
}

// Del is CNI DEL: idempotent, never an error for an unknown pod. A DEL of a sandbox other
// than the pod's last ADDed one (a queued DEL replayed late, after a restart too) changes
// nothing.
func (a *Agent) Del(req api.DelRequest) (api.DelResponse, error) {
	resp, err := a.del(req)
	if err == nil {
		a.publishServed()
	}
	return resp, err
}

func (a *Agent) del(req api.DelRequest) (api.DelResponse, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	uid := req.Pod.UID
	if uid == "" && req.ContainerID != "" {
		for u, rec := range a.records {
			if rec.Sandbox == req.ContainerID {
				uid = u
				break
			}
		}
	}
	if uid == "" {
		if obj, ok := a.pods[req.Pod.Namespace+"/"+req.Pod.Name]; ok {
			uid = objectUID(obj)
		}
	}
	rec, known := a.records[uid]
	if uid == "" || !known {
		// No ADD of this pod is known (its sandbox never reached the agent, or it is gone):
		// nothing to tear down.
		return api.DelResponse{}, nil
	}
	if rec.TornDown || (req.ContainerID != "" && rec.Sandbox != "" && rec.Sandbox != req.ContainerID) {
		return api.DelResponse{}, nil
	}
	rec.TornDown = true
	rec.IPs = nil
	if err := a.save(); err != nil {
		return api.DelResponse{}, unavailable("saving the agent's state: %v", err)
	}
	deleted, err := a.engine.DeleteEndpoint(uid)
	if err != nil {
		return api.DelResponse{}, inputError(err)
	}
	n, err := a.program()
	return api.DelResponse{Deleted: deleted, Programmed: n}, err
}

// Check is CNI CHECK: the pod's current sandbox has the addresses its CNI result says, and
// the maps hold what the engine wants (the last programming succeeded).
func (a *Agent) Check(req api.CheckRequest) error {
	if err := checkPod(req.Pod); err != nil {
		return err
	}
	ips, err := checkIPs(req.IPs)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	key := req.Pod.Namespace + "/" + req.Pod.Name
	obj, ok := a.pods[key]
	if !ok {
		return &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("pod %s is not known to the agent", key)}
	}
	rec, ok := a.records[objectUID(obj)]
	if !ok || rec.TornDown {
		return &api.Error{Status: http.StatusNotFound, Message: fmt.Sprintf("pod %s has no sandbox the agent added (or it was torn down by DEL)", key)}
	}
	if strings.Join(rec.IPs, ",") != strings.Join(ips, ",") {
		return &api.Error{Status: http.StatusConflict, Path: "ips",
			Message: fmt.Sprintf("pod %s: the agent programmed %v, not %v", key, rec.IPs, ips)}
	}
	if a.failed != nil {
		return unavailable("the last programming of the maps failed: %v", a.failed)
	}
	return nil
}

// Status is the agent's state.
func (a *Agent) Status() (api.Status, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	entries, err := a.engine.Entries()
	if err != nil {
		return api.Status{}, err
	}
	return api.Status{
		Node:       a.node,
		Maps:       a.maps.Describe(),
		Entries:    len(entries),
		Programmed: a.programmed,
		Pods:       len(a.pods),
		Synced:     a.synced,
	}, nil
}

// entriesOf counts the desired entries whose source is one of ips.
func (a *Agent) entriesOf(ips []string) (int, error) {
	entries, err := a.engine.Entries()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if contains(ips, e.Source.String()) {
			n++
		}
	}
	return n, nil
}

func checkPod(p api.Pod) error {
	if p.Namespace == "" {
		return badRequest("pod.namespace", "Required value (CNI_ARGS K8S_POD_NAMESPACE)")
	}
	if p.Name == "" {
		return badRequest("pod.name", "Required value (CNI_ARGS K8S_POD_NAME)")
	}
	return nil
}

// checkIPs parses addresses (a CIDR's address part is taken), IPv4-mapped ones unmapped.
func checkIPs(ips []string) ([]string, error) {
	if len(ips) == 0 {
		return nil, badRequest("ips", "Required value: the previous plugins' result has no IP")
	}
	out := make([]string, 0, len(ips))
	for i, text := range ips {
		addr := text
		if prefix, err := netip.ParsePrefix(text); err == nil {
			addr = prefix.Addr().String()
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil || ip.Zone() != "" {
			return nil, badRequest(fmt.Sprintf("ips[%d]", i), "Invalid value: %q: not an IP address", text)
		}
		out = append(out, ip.Unmap().String())
	}
	sort.Strings(out)
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// inputError is an engine error as an answer: bad input (400) or, for the kernel and
// capacity, try again later (503).
func inputError(err error) error {
	if errors.Is(err, egressgw.ErrInput) || errors.Is(err, egressgw.ErrParse) || errors.Is(err, egressgw.ErrInvalidArgument) {
		out := &api.Error{Status: http.StatusBadRequest, Message: err.Error()}
		var e *egressgw.Error
		if errors.As(err, &e) {
			out.Path = e.Path()
		}
		return out
	}
	return unavailable("%v", err)
}

func kind(obj map[string]any) string {
	k, _ := obj["kind"].(string)
	return k
}

func objectKey(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	ns, _ := meta["namespace"].(string)
	name, _ := meta["name"].(string)
	if ns == "" || name == "" {
		return ""
	}
	return ns + "/" + name
}

// copyObject is a deep copy of a decoded JSON object.
func copyObject(obj map[string]any) map[string]any {
	body, _ := json.Marshal(obj)
	var out map[string]any
	_ = json.Unmarshal(body, &out)
	return out
}

func objectUID(obj map[string]any) string {
	meta, _ := obj["metadata"].(map[string]any)
	uid, _ := meta["uid"].(string)
	return uid
}

// withIPs sets a Pod object's status.podIPs (and podIP), phase Running.
func withIPs(obj map[string]any, ips []string) {
	status, _ := obj["status"].(map[string]any)
	if status == nil {
		status = map[string]any{}
		obj["status"] = status
	}
	list := make([]any, 0, len(ips))
	for _, ip := range ips {
		list = append(list, map[string]any{"ip": ip})
	}
	status["podIPs"] = list
	status["podIP"] = ips[0]
	if phase, _ := status["phase"].(string); phase == "" || phase == "Pending" {
		status["phase"] = "Running"
	}
}

// splitObjects reads a JSON body: one object, a List (its items), or an array of objects.
func splitObjects(body []byte) ([]map[string]any, error) {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" {
		return nil, badRequest("body", "Required value: Kubernetes objects as JSON")
	}
	if trimmed[0] != '{' && trimmed[0] != '[' {
		return nil, badRequest("body", "Invalid value: JSON objects expected (kubectl get -o json): the agent reads the objects it caches")
	}
	// Numbers as written (json.Number): an integer past 2^53 passes through exactly.
	var decoded any
	decoder := json.NewDecoder(strings.NewReader(trimmed))
	decoder.UseNumber()
	if err := decoder.Decode(&decoded); err != nil {
		return nil, badRequest("body", "Invalid value: %v", err)
	}
	if decoder.More() {
		return nil, badRequest("body", "Invalid value: more than one JSON value")
	}
	var items []any
	switch v := decoded.(type) {
	case []any:
		items = v
	case map[string]any:
		if kind(v) == "List" || strings.HasSuffix(kind(v), "List") {
			items, _ = v["items"].([]any)
		} else {
			items = []any{v}
		}
	}
	out := make([]map[string]any, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, badRequest(fmt.Sprintf("items[%d]", i), "Invalid value: not an object")
		}
		out = append(out, obj)
	}
	return out, nil
}
