package egressgw

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// Many goroutines look up while others query and one writes events: every answer about
// the pods the writer does not touch stays what it was (run under -race).
func TestConcurrentLookupsQueriesAndEvents(t *testing.T) {
	e := seedEngine(t, Config{})
	entries, err := e.Entries()
	if err != nil {
		t.Fatal(err)
	}
	dst := mustAddr("8.8.8.8")
	want := map[netip.Addr]Verdict{}
	for _, entry := range entries {
		want[entry.Source], _ = e.Lookup(entry.Source, dst)
	}
	const readers, rounds = 8, 2000
	var wg sync.WaitGroup
	failures := make(chan error, readers+2)
	for g := 0; g < readers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				src := entries[(g+i)%len(entries)].Source
				got, err := e.Lookup(src, dst)
				if err != nil || got != want[src] {
					failures <- fmt.Errorf("goroutine %d: %s: %v (%v), want %v", g, src, got, err, want[src])
					return
				}
				if i%200 == 0 {
					if _, err := e.MapsJSON(); err != nil {
						failures <- err
						return
					}
					if _, err := e.Stats(); err != nil {
						failures <- err
						return
					}
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			ep := Endpoint{
				UID: fmt.Sprintf("churn-%d", i), Namespace: "default",
				Labels: map[string]string{"app": "nginx"},
				IPs:    []netip.Addr{netip.AddrFrom4([4]byte{172, 22, 50, byte(i)})}, Node: "172.22.48.48",
			}
			if err := e.UpsertEndpoint(ep); err != nil {
				failures <- err
				return
			}
			plan, err := e.TakePlan()
			if err == nil {
				err = e.Ack(plan, plan.Len())
			}
			if err != nil {
				failures <- err
				return
			}
			if _, err := e.DeleteEndpoint(ep.UID); err != nil {
				failures <- err
				return
			}
		}
	}()
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}
}

// Close while lookups, batches and events run: each call either answers or says
// ErrClosed, never crashes (Close comes once every goroutine has had answers).
func TestCloseDuringLookupsAndEvents(t *testing.T) {
	e := seedEngine(t, Config{})
	src, dst := mustAddr("172.22.48.4"), mustAddr("8.8.8.8")
	want, _ := e.Lookup(src, dst)
	var wg sync.WaitGroup
	var answered sync.WaitGroup
	errs := make(chan error, 8)
	worker := func(call func(i int) (bool, error)) {
		wg.Add(1)
		answered.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for i := 0; ; i++ {
				closed, err := call(i)
				if first {
					answered.Done()
					first = false
				}
				if closed {
					return
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for g := 0; g < 3; g++ {
		worker(func(i int) (bool, error) {
			got, err := e.Lookup(src, dst)
			if errors.Is(err, ErrClosed) {
				return true, nil
			}
			if err != nil || got != want {
				return false, fmt.Errorf("lookup %d: %v %v", i, got, err)
			}
			return false, nil
		})
	}
	out := make([]Verdict, 300)
	queries := make([]Query, 300)
	for i := range queries {
		queries[i] = Query{Src: src, Dst: dst}
	}
	worker(func(i int) (bool, error) {
		err := e.LookupBatch(queries, out)
		return errors.Is(err, ErrClosed), err
	})
	worker(func(i int) (bool, error) {
		err := e.UpsertEndpoint(Endpoint{UID: fmt.Sprintf("late-%d", i), IPs: []netip.Addr{mustAddr("172.22.61.1")}})
		if err == nil {
			_, err = e.TakePlan()
		}
		return errors.Is(err, ErrClosed), err
	})
	answered.Wait()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
