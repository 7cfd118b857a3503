// Package api is the egress-agent's local API: JSON over HTTP on a unix socket, spoken by
// the egress-cni plugin and by whatever feeds the agent the cluster's objects.
//
//	POST /v1/objects      Kubernetes objects as JSON (one object, a List, or an array; the
//	                      agent caches the Pods it reads), applied as events: policies, nodes,
//	                      namespaces, Pods (with labels and uid, before they have IPs),
//	                      CiliumEndpoints, slices, identities. ?sync=1 marks the end of the
//	                      first full list: programming starts then.
//	POST /v1/delete       {"kind", "name", "namespace", "uid"}: a deleted Pod or CiliumEndpoint
//	                      (by uid), Node, CiliumNode or CiliumEgressGatewayPolicy (by name).
//	POST /v1/node-health  NodeHealthRequest: what an operator (a drain) or a health probe says
//	                      of a node, kept over its objects.
//	POST /v1/cni/add      AddRequest → AddResponse, once the pod's entries are programmed.
//	POST /v1/cni/del      DelRequest → DelResponse (idempotent).
//	POST /v1/cni/check    CheckRequest → 200, or an Error naming what differs.
//	GET  /v1/status       Status.
//
// What an agent tells the cluster (egress-agent --cluster-socket: whatever feeds it its objects
// takes them back and streams them to every node, as a Kubernetes API server would): a pod's
// object with the addresses CNI ADD gave it, and a gateway's Ack (kind EgressGatewayAck) of
// the sources it serves, which an ADD waiting for its pod's gateways (--gateway-ack-timeout)
// reads from the stream.
//
// Every error answer is an Error with an HTTP status: 400 for bad input (its path names the
// field), 404 and 409 for a CHECK that fails (no such sandbox, other addresses), 405 for a
// wrong method, 500 for a programming failure a retry cannot fix (a full map), 503 when the
// agent cannot do it now — not synced, the pod's object not arrived, the kernel failing (the
// plugin maps it to CNI code 11, try again later).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultSocket is where the agent listens unless told otherwise.
const DefaultSocket = "/run/egress-gateway/agent.sock"

// Pod names a pod as CNI_ARGS does (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID).
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// AddRequest is a CNI ADD: the pod, its sandbox and the addresses the previous plugins gave it.
type AddRequest struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifName"`
	Netns       string   `json:"netns"`
	Pod         Pod      `json:"pod"`
	IPs         []string `json:"ips"`
	// HostInterface is the pod's host-side interface, when the previous plugins made one.
	HostInterface string `json:"hostInterface,omitempty"`
}

// AddResponse says what ADD programmed.
type AddResponse struct {
	// UID is the endpoint's uid (the pod's).
	UID string `json:"uid"`
	// Entries is how many map entries the pod has now (0: no policy selects it).
	Entries int `json:"entries"`
	// Programmed is how many map writes this ADD made.
	Programmed int `json:"programmed"`
}

// DelRequest is a CNI DEL.
type DelRequest struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Pod         Pod    `json:"pod"`
}

// DelResponse says what DEL removed.
type DelResponse struct {
	// Deleted is whether the agent had an endpoint for the pod.
	Deleted    bool `json:"deleted"`
	Programmed int  `json:"programmed"`
}

// CheckRequest is a CNI CHECK: the pod and the addresses it should have.
type CheckRequest struct {
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifName"`
	Pod         Pod      `json:"pod"`
	IPs         []string `json:"ips"`
}

// NodeHealthRequest is what an operator (a drain: weight 0) or a health probe says of a node
// (SEMANTICS B.3); a field left out (null) is the node's objects' value again.
type NodeHealthRequest struct {
	Name   string `json:"name"`
	Ready  *bool  `json:"ready,omitempty"`
	Weight *int   `json:"weight,omitempty"`
}

// DeleteRequest is a deleted cluster object.
type DeleteRequest struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	UID       string `json:"uid,omitempty"`
}

// Applied is what POST /v1/objects applied.
type Applied struct {
	Policies        int      `json:"policies"`
	Nodes           int      `json:"nodes"`
	Endpoints       int      `json:"endpoints"`
	Namespaces      int      `json:"namespaces"`
	InvalidPolicies int      `json:"invalidPolicies"`
	Skipped         int      `json:"skipped"`
	Programmed      int      `json:"programmed"`
	Warnings        []string `json:"warnings,omitempty"`
}

// Status is the agent's state.
type Status struct {
	Node string `json:"node"`
	Maps string `json:"maps"`
	// Entries is how many map entries the node's engine desires.
	Entries int `json:"entries"`
	// Programmed is how many map writes the agent made since it started.
	Programmed int `json:"programmed"`
	// Pods is how many pods the agent knows from the cluster's objects.
	Pods int `json:"pods"`
	// Synced is whether the cluster's first full list has arrived (programming started).
	Synced bool `json:"synced"`
}

// AckKind and AckAPIVersion name the object in which a gateway node tells the cluster which
// sources its maps serve.
const (
	AckKind       = "EgressGatewayAck"
	AckAPIVersion = "egress-agent/v1"
)

// Served is one source a gateway serves: its maps hold an entry for Source naming Gateway
// (the node's own address) with an egress IP.
type Served struct {
	Source  string `json:"source"`
	Gateway string `json:"gateway"`
}

// Ack is everything a gateway node serves now: one object per node (named after it), each
// version replacing the last. Seq orders a node's versions, across its agent's restarts too
// (a receiver ignores a version older than one it has).
type Ack struct {
	// Node is the gateway node's name.
	Node   string   `json:"node"`
	Seq    uint64   `json:"seq"`
	Served []Served `json:"served"`
}

// AckObject is ack as a cluster object.
func AckObject(ack Ack) map[string]any {
	return map[string]any{
		"apiVersion": AckAPIVersion,
		"kind":       AckKind,
		"metadata":   map[string]any{"name": ack.Node},
		"spec":       ack,
	}
}

// Error is every error answer's body.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	// Path names the field or argument at fault, when one is.
	Path string `json:"path,omitempty"`
}

func (e *Error) Error() string {
	if e.Path != "" {
		return e.Path + ": " + e.Message
	}
	return e.Message
}

// Unavailable says whether err means "the agent cannot do it now, try again later": the agent
// is unreachable, or answered 503.
func Unavailable(err error) bool {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusServiceUnavailable
	}
	var unreachable *UnreachableError
	return errors.As(err, &unreachable)
}

// UnreachableError is a request that never got an answer.
type UnreachableError struct {
	Socket string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("egress-agent is not reachable at %s: %v", e.Socket, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Client calls an agent over its unix socket.
type Client struct {
	Socket  string
	Timeout time.Duration
	http    *http.Client
}

// NewClient is a client of the agent listening on socket, each call bounded by timeout.
func NewClient(socket string, timeout time.Duration) *Client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}
	return &Client{
		Socket:  socket,
		Timeout: timeout,
		http: &http.Client{
			Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true},
			Timeout:   timeout,
		},
	}
}

// Add is a CNI ADD.
func (c *Client) Add(req AddRequest) (AddResponse, error) {
	var out AddResponse
	err := c.call("/v1/cni/add", req, &out)
	return out, err
}

// Del is a CNI DEL.
func (c *Client) Del(req DelRequest) (DelResponse, error) {
	var out DelResponse
	err := c.call("/v1/cni/del", req, &out)
	return out, err
}

// Check is a CNI CHECK.
func (c *Client) Check(req CheckRequest) error {
	return c.call("/v1/cni/check", req, nil)
}

// Objects applies Kubernetes objects (JSON: one object, a List, or an array).
func (c *Client) Objects(text []byte) (Applied, error) {
	var out Applied
	err := c.post("/v1/objects", "application/json", text, &out)
	return out, err
}

// Sync applies objects as Objects does and marks the cluster's first full list as complete
// (programming starts).
func (c *Client) Sync(text []byte) (Applied, error) {
	var out Applied
	err := c.post("/v1/objects?sync=1", "application/json", text, &out)
	return out, err
}

// Publish posts objects to /v1/objects as a List: a *Client on the socket of whatever feeds
// an agent its objects is that agent's agent.Publisher.
func (c *Client) Publish(objects []map[string]any) error {
	body, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": objects})
	if err != nil {
		return err
	}
	return c.post("/v1/objects", "application/json", body, nil)
}

// NodeHealth sets what an operator or a health probe says of a node.
func (c *Client) NodeHealth(req NodeHealthRequest) error {
	return c.call("/v1/node-health", req, nil)
}

// Delete deletes a cluster object.
func (c *Client) Delete(req DeleteRequest) error {
	return c.call("/v1/delete", req, nil)
}

// Status is the agent's state.
func (c *Client) Status() (Status, error) {
	var out Status
	resp, err := c.http.Get("http://agent/v1/status")
	if err != nil {
		return out, &UnreachableError{Socket: c.Socket, Err: err}
	}
	return out, decode(resp, &out)
}

func (c *Client) call(path string, req, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return c.post(path, "application/json", body, out)
}

func (c *Client) post(path, contentType string, body []byte, out any) error {
	resp, err := c.http.Post("http://agent"+path, contentType, bytes.NewReader(body))
	if err != nil {
		return &UnreachableError{Socket: c.Socket, Err: err}
	}
	return decode(resp, out)
}

func decode(resp *http.Response, out any) error {
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		apiErr := &Error{Status: resp.StatusCode}
		if json.Unmarshal(body, apiErr) != nil || apiErr.Message == "" {
			apiErr.Message = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		return apiErr
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(body, out)
}
