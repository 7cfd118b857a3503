// Package health probes gateway nodes for egress-agent (SEMANTICS B.3): every interval, one
// ICMP echo per gateway node over the node network, answered by that node's kernel — what
// carries the traffic (its links, its stack), not its agent: a gateway whose agent crashed
// while its datapath still forwards keeps answering, so it is not failed over. A node is
// unready after Fall probes in a row went unanswered, and ready again after Rise answered in a
// row; Rise longer than a flap keeps a flapping link out until it has been up that long (one
// move out, one move back).
package health

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// MinInterval is the shortest interval: each probe's answer is awaited one interval, and a
// round trip over a node network takes about a millisecond.
const MinInterval = 10 * time.Millisecond

// Config is how often and how strictly nodes are probed.
type Config struct {
	// Interval between probes of a node; each probe's answer is awaited as long.
	Interval time.Duration
	// Fall: unanswered probes in a row that make a ready node unready.
	Fall int
	// Rise: answered probes in a row that make an unready node ready again.
	Rise int
}

// Check refuses a config that cannot work, naming the field.
func (c Config) Check() error {
	switch {
	case c.Interval < MinInterval:
		return fmt.Errorf("Interval: Invalid value: %v: must be at least %v", c.Interval, MinInterval)
	case c.Fall < 1:
		return fmt.Errorf("Fall: Invalid value: %d: must be at least 1", c.Fall)
	case c.Rise < 1:
		return fmt.Errorf("Rise: Invalid value: %d: must be at least 1", c.Rise)
	}
	return nil
}

// Tracker turns probe results into readiness, per node, with the config's hysteresis. A node
// it has not seen is ready (the engine's default). Not safe for concurrent use.
type Tracker struct {
	cfg   Config
	nodes map[string]*state
}

type state struct {
	ready    bool
	fails    int
	answered int
}

// NewTracker is a tracker with cfg's thresholds.
func NewTracker(cfg Config) *Tracker {
	return &Tracker{cfg: cfg, nodes: map[string]*state{}}
}

// Observe records one probe of node: its readiness now, and whether that changed.
func (t *Tracker) Observe(node string, answered bool) (ready, changed bool) {
	s, ok := t.nodes[node]
	if !ok {
		s = &state{ready: true}
		t.nodes[node] = s
	}
	if answered {
		s.fails = 0
		s.answered++
		if !s.ready && s.answered >= t.cfg.Rise {
			s.ready = true
			return true, true
		}
		return s.ready, false
	}
	s.answered = 0
	s.fails++
	if s.ready && s.fails >= t.cfg.Fall {
		s.ready = false
		return false, true
	}
	return s.ready, false
}

// Forget drops a node no longer probed (it is ready again if it comes back).
func (t *Tracker) Forget(node string) {
	delete(t.nodes, node)
}

// Ready says whether node is ready (a node never seen is).
func (t *Tracker) Ready(node string) bool {
	s, ok := t.nodes[node]
	return !ok || s.ready
}

// Target is a node to probe.
type Target struct {
	Name string
	Addr netip.Addr
}

// Transport sends one probe and says whether it was answered within timeout.
type Transport interface {
	Probe(addr netip.Addr, timeout time.Duration) bool
}

// Prober probes the targets every interval, all at once, and reports each node whose
// readiness changed.
type Prober struct {
	cfg       Config
	transport Transport
	targets   func() []Target
	changed   func(node string, ready bool)
	tracker   *Tracker
	stop      chan struct{}
	stopOnce  sync.Once
	done      sync.WaitGroup
}

// NewProber probes what targets returns (asked before each round) through transport, and calls
// changed (from the prober's goroutine) when a node turns unready or ready again.
func NewProber(cfg Config, transport Transport, targets func() []Target, changed func(node string, ready bool)) (*Prober, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return &Prober{cfg: cfg, transport: transport, targets: targets, changed: changed,
		tracker: NewTracker(cfg), stop: make(chan struct{})}, nil
}

// Start runs the rounds until Stop.
func (p *Prober) Start() {
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		ticker := time.NewTicker(p.cfg.Interval)
		defer ticker.Stop()
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			p.Round()
			select {
			case <-p.stop:
				return
			case <-ticker.C:
			}
		}
	}()
}

// Stop ends the rounds and waits for the last one (safe to call again).
func (p *Prober) Stop() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.done.Wait()
}

// Round probes every target once (in parallel, each awaited one interval) and reports the
// changes. Nodes no longer among the targets are forgotten (one left unready is reported
// ready: what its objects say holds again).
func (p *Prober) Round() {
	targets := p.targets()
	answered := make([]bool, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func(i int, t Target) {
			defer wg.Done()
			answered[i] = p.transport.Probe(t.Addr, p.cfg.Interval)
		}(i, t)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, t := range targets {
		seen[t.Name] = true
		if ready, changed := p.tracker.Observe(t.Name, answered[i]); changed {
			p.changed(t.Name, ready)
		}
	}
	for name := range p.tracker.nodes {
		if !seen[name] {
			// No longer probed: the node's objects say again (an unready one is let go).
			wasReady := p.tracker.Ready(name)
			p.tracker.Forget(name)
			if !wasReady {
				p.changed(name, true)
			}
		}
	}
}
