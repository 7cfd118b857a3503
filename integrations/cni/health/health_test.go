package health

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"egresscni/internal/testkit"
)

var cfg = Config{Interval: 10 * time.Millisecond, Fall: 3, Rise: 10}

// A ready node turns unready after Fall misses in a row, not before; ready again after Rise
// answers in a row, not before; a miss in between starts the count again.
func TestHysteresis(t *testing.T) {
	tr := NewTracker(cfg)
	steps := []struct {
		answered      bool
		ready, change bool
	}{
		{true, true, false}, {false, true, false}, {false, true, false}, {true, true, false}, // 2 misses, reset
		{false, true, false}, {false, true, false}, {false, false, true}, // the 3rd miss in a row
		{false, false, false},
	}
	for i, s := range steps {
		if ready, changed := tr.Observe("gw", s.answered); ready != s.ready || changed != s.change {
			t.Fatalf("step %d (%v): ready %v changed %v, want %v %v", i, s.answered, ready, changed, s.ready, s.change)
		}
	}
	for i := 1; i < cfg.Rise; i++ {
		if ready, changed := tr.Observe("gw", true); ready || changed {
			t.Fatalf("answer %d of %d: ready already", i, cfg.Rise)
		}
	}
	if _, changed := tr.Observe("gw", false); changed {
		t.Fatal("a miss while unready changed it")
	}
	for i := 1; i <= cfg.Rise; i++ {
		ready, changed := tr.Observe("gw", true)
		if (i == cfg.Rise) != (ready && changed) {
			t.Fatalf("answer %d of %d: ready %v changed %v", i, cfg.Rise, ready, changed)
		}
	}
	if !tr.Ready("gw") || !tr.Ready("never-seen") {
		t.Fatal("ready nodes said unready")
	}
}

// A link flapping down and up every 3 probes (300 ms at 100 ms) for 5 s moves the node out once
// and back once, after it stays up for Rise probes.
func TestFlappingMovesOnceOutOnceBack(t *testing.T) {
	tr := NewTracker(cfg)
	var changes []bool
	observe := func(answered bool) {
		if ready, changed := tr.Observe("gw", answered); changed {
			changes = append(changes, ready)
		}
	}
	for i := 0; i < 50; i++ {
		observe((i/3)%2 == 1) // down 3, up 3, down 3, ...
	}
	for i := 0; i < cfg.Rise; i++ {
		observe(true)
	}
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Fatalf("changes %v, want [unready ready]", changes)
	}
}

type fake struct {
	mu   sync.Mutex
	down map[netip.Addr]bool
	n    int
}

func (f *fake) Probe(addr netip.Addr, _ time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return !f.down[addr]
}

// The prober reports a dead node after Fall rounds and a node it no longer probes as ready
// (its objects say again), and probes every target each round.
func TestProberRounds(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	f := &fake{down: map[netip.Addr]bool{b: true}}
	targets := []Target{{"a", a}, {"b", b}}
	var got []string
	p, err := NewProber(cfg, f, func() []Target { return targets }, func(node string, ready bool) {
		got = append(got, node+map[bool]string{true: "+", false: "-"}[ready])
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < cfg.Fall; i++ {
		p.Round()
	}
	if strings.Join(got, ",") != "b-" || f.n != 2*cfg.Fall {
		t.Fatalf("after %d rounds: %v (%d probes)", cfg.Fall, got, f.n)
	}
	targets = targets[:1]
	p.Round()
	if strings.Join(got, ",") != "b-,b+" {
		t.Fatalf("b no longer probed: %v", got)
	}
	if _, err := NewProber(Config{Interval: time.Second, Fall: 0, Rise: 1}, f, nil, nil); err == nil || !strings.HasPrefix(err.Error(), "Fall:") {
		t.Fatalf("Fall 0: %v", err)
	}
	if _, err := NewProber(Config{Interval: time.Nanosecond, Fall: 1, Rise: 1}, f, nil, nil); err == nil || !strings.HasPrefix(err.Error(), "Interval:") {
		t.Fatalf("Interval 1ns: %v", err)
	}
}

// Start runs rounds every interval until Stop, which waits for the last and may be repeated.
func TestProberStartStop(t *testing.T) {
	f := &fake{down: map[netip.Addr]bool{}}
	p, err := NewProber(cfg, f, func() []Target { return []Target{{"a", netip.MustParseAddr("192.0.2.1")}} },
		func(string, bool) {})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	time.Sleep(10 * cfg.Interval)
	p.Stop()
	f.mu.Lock()
	n := f.n
	f.mu.Unlock()
	if n < 3 {
		t.Fatalf("%d rounds in 10 intervals", n)
	}
	time.Sleep(3 * cfg.Interval)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n != n {
		t.Fatalf("rounds after Stop: %d, then %d", n, f.n)
	}
	p.Stop()
}

// The real probe (root): the loopback address answers, an address no one has does not.
func TestICMP(t *testing.T) {
	icmp, err := NewICMP()
	if err != nil {
		testkit.NeedPrivilege(t, fmt.Sprintf("a raw ICMP socket: %v (needs root)", err))
	}
	defer icmp.Close()
	if !icmp.Probe(netip.MustParseAddr("127.0.0.1"), time.Second) {
		t.Fatal("127.0.0.1 did not answer")
	}
	// TEST-NET-1: routed nowhere here (no answer, or the send fails).
	start := time.Now()
	if icmp.Probe(netip.MustParseAddr("192.0.2.77"), 100*time.Millisecond) {
		t.Fatal("192.0.2.77 answered")
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("an unanswered probe took %v", took)
	}
}
