// Package plugin is egress-cni: a chained CNI plugin (spec 1.0.0) that hands each pod to the
// node's egress-agent inside CNI ADD, so that its egress gateway entries exist before the pod
// runs (SEMANTICS B.4), and passes the previous plugins' result through unchanged.
//
// ADD asks the agent to program the pod; an agent that is down or not ready fails ADD with
// code 11 (try again later) and says why. DEL does not fail for the agent's absence: it is
// queued on disk and replayed by the next call that reaches the agent, and by the agent at
// start. CHECK asks the agent whether the pod's current sandbox has these addresses and its
// maps were programmed.
package plugin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"egresscni/api"
	"egresscni/queue"
)

// Conf is the plugin's configuration in the network list.
type Conf struct {
	types.NetConf
	// AgentSocket is the agent's unix socket (default api.DefaultSocket).
	AgentSocket string `json:"agentSocket,omitempty"`
	// DelQueue is the directory of queued DELs (default queue.DefaultDir).
	DelQueue string `json:"delQueue,omitempty"`
	// TimeoutSeconds bounds each call to the agent (default 10).
	TimeoutSeconds float64 `json:"timeoutSeconds,omitempty"`
}

// k8sArgs are the CNI_ARGS a Kubernetes runtime passes.
type k8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS names
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive,stylecheck
	K8S_POD_UID                types.UnmarshallableString //nolint:revive,stylecheck
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive,stylecheck
}

// About is the plugin's VERSION banner.
const About = "egress-cni: programs a pod's egress gateway entries in CNI ADD (egress-gateway)"

// Versions are the spec versions the plugin speaks.
var Versions = version.PluginSupports("0.4.0", "1.0.0")

// Main runs the plugin (skel reads the environment and stdin).
func Main() {
	skel.PluginMain(Add, Check, Del, Versions, About)
}

func parse(args *skel.CmdArgs) (*Conf, api.Pod, error) {
	conf := &Conf{}
	if err := json.Unmarshal(args.StdinData, conf); err != nil {
		return nil, api.Pod{}, types.NewError(types.ErrDecodingFailure, "egress-cni: the network configuration is not JSON", err.Error())
	}
	if conf.AgentSocket == "" {
		conf.AgentSocket = api.DefaultSocket
	}
	if conf.DelQueue == "" {
		conf.DelQueue = queue.DefaultDir
	}
	if conf.TimeoutSeconds < 0 {
		return nil, api.Pod{}, types.NewError(types.ErrInvalidNetworkConfig, "egress-cni: timeoutSeconds: must be positive", fmt.Sprint(conf.TimeoutSeconds))
	}
	if conf.TimeoutSeconds == 0 {
		conf.TimeoutSeconds = 10
	}
	var k8s k8sArgs
	if err := types.LoadArgs(args.Args, &k8s); err != nil {
		return conf, api.Pod{}, types.NewError(types.ErrInvalidEnvironmentVariables, "egress-cni: CNI_ARGS are unreadable", err.Error())
	}
	pod := api.Pod{
		Namespace: string(k8s.K8S_POD_NAMESPACE),
		Name:      string(k8s.K8S_POD_NAME),
		UID:       string(k8s.K8S_POD_UID),
	}
	return conf, pod, nil
}

// needPod refuses a pod CNI_ARGS do not name (code 4), before the agent is asked: with the
// agent down the runtime would otherwise retry forever.
func needPod(pod api.Pod) error {
	if pod.Namespace == "" || pod.Name == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables,
			"egress-cni: CNI_ARGS must name the pod (K8S_POD_NAMESPACE and K8S_POD_NAME)", "pod.name or pod.namespace: Required value")
	}
	return nil
}

func (c *Conf) client() *api.Client {
	return api.NewClient(c.AgentSocket, time.Duration(c.TimeoutSeconds*float64(time.Second)))
}

// prevResult is the previous plugins' result, required: this plugin is chained.
func prevResult(conf *Conf) (*types100.Result, error) {
	if conf.RawPrevResult == nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "egress-cni: no prevResult: it must follow a plugin that gives the pod its addresses (e.g. ptp or bridge)", "")
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "egress-cni: prevResult is unreadable", err.Error())
	}
	result, err := types100.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, "egress-cni: prevResult cannot be read as CNI 1.0.0", err.Error())
	}
	return result, nil
}

// addresses are the result's IPs (without prefix lengths) and the host-side interface.
func addresses(result *types100.Result) ([]string, string) {
	ips := make([]string, 0, len(result.IPs))
	for _, ip := range result.IPs {
		ips = append(ips, ip.Address.IP.String())
	}
	host := ""
	for _, iface := range result.Interfaces {
		if iface.Sandbox == "" {
			host = iface.Name
			break
		}
	}
	return ips, host
}

// agentError is an agent's answer as a CNI error: unreachable or not ready → 11.
func agentError(op string, err error) error {
	if api.Unavailable(err) {
		return types.NewError(types.ErrTryAgainLater, fmt.Sprintf("egress-cni: %s: try again later", op), err.Error())
	}
	var apiErr *api.Error
	if asAPIError(err, &apiErr) && apiErr.Status == http.StatusBadRequest {
		code := types.ErrInvalidNetworkConfig
		if len(apiErr.Path) >= 4 && apiErr.Path[:4] == "pod." {
			code = types.ErrInvalidEnvironmentVariables
		}
		return types.NewError(code, fmt.Sprintf("egress-cni: %s: refused by egress-agent", op), apiErr.Error())
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("egress-cni: %s failed", op), err.Error())
}

// podAndResult is what ADD and CHECK read: the configuration, the pod CNI_ARGS name (required)
// and the previous plugins' result (required).
func podAndResult(args *skel.CmdArgs) (*Conf, api.Pod, *types100.Result, error) {
	conf, pod, err := parse(args)
	if err != nil {
		return nil, pod, nil, err
	}
	if err := needPod(pod); err != nil {
		return nil, pod, nil, err
	}
	result, err := prevResult(conf)
	return conf, pod, result, err
}

// Add is CNI ADD.
func Add(args *skel.CmdArgs) error {
	conf, pod, result, err := podAndResult(args)
	if err != nil {
		return err
	}
	ips, host := addresses(result)
	client := conf.client()
	replayQueued(conf, client)
	_, err = client.Add(api.AddRequest{
		ContainerID:   args.ContainerID,
		IfName:        args.IfName,
		Netns:         args.Netns,
		Pod:           pod,
		IPs:           ips,
		HostInterface: host,
	})
	if err != nil {
		return agentError("ADD", err)
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// Del is CNI DEL: never an error for the agent's absence (queued instead) nor for CNI_ARGS it
// cannot read (the sandbox names the pod then); an unreadable configuration is one.
func Del(args *skel.CmdArgs) error {
	conf, pod, err := parse(args)
	if conf == nil {
		return err
	}
	req := api.DelRequest{ContainerID: args.ContainerID, IfName: args.IfName, Pod: pod}
	client := conf.client()
	replayQueued(conf, client)
	if _, err := client.Del(req); err != nil {
		if !api.Unavailable(err) {
			return agentError("DEL", err)
		}
		if qerr := queue.Put(conf.DelQueue, req); qerr != nil {
			return types.NewError(types.ErrIOFailure, "egress-cni: DEL: the agent is unreachable and the DEL could not be queued", qerr.Error())
		}
	}
	return nil
}

// Check is CNI CHECK.
func Check(args *skel.CmdArgs) error {
	conf, pod, result, err := podAndResult(args)
	if err != nil {
		return err
	}
	ips, _ := addresses(result)
	err = conf.client().Check(api.CheckRequest{ContainerID: args.ContainerID, IfName: args.IfName, Pod: pod, IPs: ips})
	if err != nil {
		return agentError("CHECK", err)
	}
	return nil
}

// replayQueued sends the DELs queued while the agent was away (best effort: they stay queued
// on failure).
func replayQueued(conf *Conf, client *api.Client) {
	_, _ = queue.Replay(conf.DelQueue, func(req api.DelRequest) error {
		_, err := client.Del(req)
		return err
	})
}

func asAPIError(err error, target **api.Error) bool {
	for err != nil {
		if e, ok := err.(*api.Error); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
