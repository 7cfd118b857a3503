package queue

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"egresscni/api"
)

// Queued DELs are replayed once each, even by concurrent replays; a failure keeps the rest;
// an unreadable file is set aside without blocking the others.
func TestReplayOnceEachAndPastABadFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "q")
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if err := Put(dir, api.DelRequest{ContainerID: id, IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Put(dir, api.DelRequest{ContainerID: "a", IfName: "eth0"}); err != nil {
		t.Fatal(err)
	}
	var sends int64
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Replay(dir, func(api.DelRequest) error { atomic.AddInt64(&sends, 1); return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if sends != 5 {
		t.Fatalf("%d sends for 5 queued DELs", sends)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := Put(dir, api.DelRequest{ContainerID: id, IfName: "eth0"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "del-0-broken.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	down := errors.New("agent down")
	sent, err := Replay(dir, func(req api.DelRequest) error {
		if req.ContainerID == "b" {
			return down
		}
		return nil
	})
	if sent != 1 || !errors.Is(err, down) {
		t.Fatalf("a failing send: %d sent, %v", sent, err)
	}
	sent, err = Replay(dir, func(api.DelRequest) error { return nil })
	if sent != 2 || err != nil {
		t.Fatalf("the rest: %d sent, %v", sent, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad-del-0-broken.json")); err != nil {
		t.Fatalf("the unreadable file was not set aside: %v", err)
	}
}
