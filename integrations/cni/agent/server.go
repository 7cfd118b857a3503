package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"egresscni/api"
)

// Handler serves the local API (package api) for a.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/objects", post(func(body []byte, r *http.Request) (any, error) {
		return a.Objects(body, r.URL.Query().Get("sync") == "1")
	}))
	mux.HandleFunc("/v1/delete", post(func(body []byte, _ *http.Request) (any, error) {
		var req api.DeleteRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return struct{}{}, a.Delete(req)
	}))
	mux.HandleFunc("/v1/node-health", post(func(body []byte, _ *http.Request) (any, error) {
		var req api.NodeHealthRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return struct{}{}, a.NodeHealth(req)
	}))
	mux.HandleFunc("/v1/cni/add", post(func(body []byte, _ *http.Request) (any, error) {
		var req api.AddRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return a.Add(req)
	}))
	mux.HandleFunc("/v1/cni/del", post(func(body []byte, _ *http.Request) (any, error) {
		var req api.DelRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return a.Del(req)
	}))
	mux.HandleFunc("/v1/cni/check", post(func(body []byte, _ *http.Request) (any, error) {
		var req api.CheckRequest
		if err := decodeJSON(body, &req); err != nil {
			return nil, err
		}
		return struct{}{}, a.Check(req)
	}))
	mux.HandleFunc("/v1/status", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			answer(w, nil, &api.Error{Status: http.StatusMethodNotAllowed, Message: "GET only"})
			return
		}
		status, err := a.Status()
		answer(w, status, err)
	})
	return mux
}

// Listen serves the API on a unix socket at path (a stale socket file is replaced; the
// directory is created), until the listener is closed.
func (a *Agent) Listen(path string) (net.Listener, *http.Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	listener, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, err
	}
	server := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(listener) }()
	return listener, server, nil
}

func post(f func(body []byte, r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			answer(w, nil, &api.Error{Status: http.StatusMethodNotAllowed, Message: "POST only"})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
		if err != nil {
			answer(w, nil, badRequest("body", "unreadable: %v", err))
			return
		}
		out, err := f(body, r)
		answer(w, out, err)
	}
}

func decodeJSON(body []byte, out any) error {
	if err := json.Unmarshal(body, out); err != nil {
		return badRequest("body", "Invalid value: %v", err)
	}
	return nil
}

func answer(w http.ResponseWriter, out any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		apiErr := &api.Error{}
		if !errors.As(err, &apiErr) {
			apiErr = &api.Error{Status: http.StatusInternalServerError, Message: err.Error()}
		}
		w.WriteHeader(apiErr.Status)
		_ = json.NewEncoder(w).Encode(apiErr)
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}
