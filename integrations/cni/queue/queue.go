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

	"egresscni/api"
)

// DefaultDir is where the plugin queues DELs unless its configuration says otherwise.
const DefaultDir = "/var/run/egress-gateway/del-queue"

// Put writes a DEL to dir, one file per sandbox (a repeated DEL replaces it).
func Put(dir string, req api.DelRequest) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
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

// Replay sends every queued DEL with send, oldest name first, removing each one sent. It
// stops at the first failure (the rest stay queued) and returns how many were sent.
func Replay(dir string, send func(api.DelRequest) error) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
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
	for _, name := range names {
		path := filepath.Join(dir, name)
		body, err := os.ReadFile(path)
		if err != nil {
			return sent, err
		}
		var req api.DelRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return sent, fmt.Errorf("%s: %w", path, err)
		}
		if err := send(req); err != nil {
			return sent, err
		}
		if err := os.Remove(path); err != nil {
			return sent, err
		}
		sent++
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
