// Package queue keeps CNI DELs that could not reach the agent, on disk, to be replayed when
// it is back: a DEL never fails (the runtime would retry it forever), and a pod torn down
// while the agent was away must not keep its entries (Cilium's deletion queue does this).
package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"egresscni/api"
)

// DefaultDir is where the plugin queues DELs unless its configuration says otherwise.
const DefaultDir = "/run/egress-gateway/del-queue"

// lock takes dir's lock (an flock on dir/.lock): one process at a time puts or replays.
func lock(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Put writes a DEL to dir, one file per sandbox and interface (a repeated DEL replaces it).
func Put(dir string, req api.DelRequest) error {
	unlock, err := lock(dir)
	if err != nil {
		return err
	}
	defer unlock()
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	name := "del-" + safe(req.ContainerID) + "-" + safe(req.IfName) + ".json"
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

// Replay sends every queued DEL with send (in file-name order: the order does not matter, a
// DEL of an old sandbox being stale), removing each one sent, under dir's lock (concurrent
// plugin calls and the agent's start replay it once). It stops at the first failure of send
// (the rest stay queued) and returns how many were sent. An unreadable file is set aside as
// bad-*.json (said in the error) and the others are still replayed.
func Replay(dir string, send func(api.DelRequest) error) (int, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	unlock, err := lock(dir)
	if err != nil {
		return 0, err
	}
	defer unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "del-") && strings.HasSuffix(e.Name(), ".json") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	sent := 0
	var bad []string
	for _, name := range names {
		path := filepath.Join(dir, name)
		body, err := os.ReadFile(path)
		if err != nil {
			return sent, err
		}
		var req api.DelRequest
		if err := json.Unmarshal(body, &req); err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", path, err))
			_ = os.Rename(path, filepath.Join(dir, "bad-"+name))
			continue
		}
		if err := send(req); err != nil {
			return sent, err
		}
		if err := os.Remove(path); err != nil {
			return sent, err
		}
		sent++
	}
	if len(bad) > 0 {
		return sent, fmt.Errorf("unreadable queued DELs set aside: %s", strings.Join(bad, "; "))
	}
	return sent, nil
}

// safe keeps a file name's characters to [A-Za-z0-9._-].
func safe(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
