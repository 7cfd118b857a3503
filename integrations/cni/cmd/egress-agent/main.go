// Command egress-agent is one node's egress gateway agent: it holds an egressgw.Engine fed
// the cluster's objects and the egress-cni plugin's ADD/DEL/CHECK over a unix socket
// (package api), and programs the node's maps after each (see README).
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"egresscni/agent"
	"egresscni/api"
	"egresscni/health"
	"egresscni/queue"

	"egressgw"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "egress-agent:", err)
		os.Exit(1)
	}
}

// choice is the one of choices whose name (String) is value, or an error naming flag and
// listing the names.
func choice[T fmt.Stringer](flag, value string, choices ...T) (T, error) {
	names := make([]string, len(choices))
	for i, c := range choices {
		if c.String() == value {
			return c, nil
		}
		names[i] = fmt.Sprintf("%q", c.String())
	}
	var none T
	return none, fmt.Errorf("%s: Unsupported value: %q: supported values: %s", flag, value, strings.Join(names, ", "))
}

func run() error {
	node := flag.String("node", "", "this node's name, as its Node/CiliumNode object names it (required)")
	socket := flag.String("socket", api.DefaultSocket, "the unix socket the API listens on")
	selection := flag.String("selection", "cilium", "gateway selection: cilium or consistent")
	version := flag.String("cilium-version", "1.18", "the Cilium version reproduced: 1.18, 1.19 or 1.20")
	layout := flag.String("layout", "version", "the maps written: version (the Cilium version's own), v4v2, legacy, dual, or compact (ours: endpoint blocks -> sets, (set, destination) rules)")
	devices := flag.String("devices", "", "this node's devices (the snapshot's interfaces shape, YAML or JSON); needed on a gateway node")
	delQueue := flag.String("del-queue", queue.DefaultDir, "the plugin's queue of DELs made while the agent was away, replayed at start")
	state := flag.String("state", "/run/egress-gateway/agent-state.json", "what CNI said of each pod (current sandbox, addresses, torn down), kept across restarts (a tmpfs)")
	programOn := flag.String("program-on", "cni", "when a pod of this node is programmed: cni (inside CNI ADD) or watch (when its object with its addresses comes back from the cluster, as Cilium does; for comparison)")
	clusterSocket := flag.String("cluster-socket", "", "the unix socket of whatever feeds the agent its objects (POST /v1/objects): told each pod's addresses after ADD and what this node serves as a gateway")
	ackTimeout := flag.Duration("gateway-ack-timeout", 0, "when positive, CNI ADD waits (at most this long) until every other node the pod's entries name as gateway has acknowledged serving it; needs --cluster-socket")
	probeInterval := flag.Duration("probe-interval", 0, "when positive, probe every gateway node of the policies (ICMP echo over the node network, answered by its kernel; root) this often, and set its readiness in this node's engine (consistent mode moves its pods)")
	probeFall := flag.Int("probe-fall", 3, "unanswered probes in a row that make a gateway node unready")
	probeRise := flag.Int("probe-rise", 10, "answered probes in a row that make it ready again (longer than a flapping link's up time)")
	mapsFlags := addMapsFlags()
	flag.Parse()
	if *node == "" {
		return fmt.Errorf("--node: Required value")
	}
	cfg := egressgw.Config{LocalNode: *node}
	var err error
	if cfg.Selection, err = choice("--selection", *selection, egressgw.SelectionCilium, egressgw.SelectionConsistent); err != nil {
		return err
	}
	if cfg.CiliumVersion, err = choice("--cilium-version", *version, egressgw.CiliumV1_18, egressgw.CiliumV1_19, egressgw.CiliumV1_20); err != nil {
		return err
	}
	if cfg.Layout, err = choice("--layout", *layout, egressgw.LayoutVersion, egressgw.LayoutV4V2, egressgw.LayoutLegacy, egressgw.LayoutDual, egressgw.LayoutCompact); err != nil {
		return err
	}
	opts := agent.Options{GatewayAckTimeout: *ackTimeout}
	if opts.ProgramOn, err = choice("--program-on", *programOn, agent.ProgramOnCNI, agent.ProgramOnWatch); err != nil {
		return err
	}
	if *clusterSocket != "" {
		opts.Publisher = api.NewClient(*clusterSocket, 10*time.Second)
	}
	if err := opts.Check(); err != nil {
		var option *agent.OptionError
		if errors.As(err, &option) && option.Field == "GatewayAckTimeout" {
			// The options as this command's flags.
			flags := strings.NewReplacer("a Publisher (the cluster)", "--cluster-socket", "ProgramOn cni", "--program-on cni")
			return fmt.Errorf("--gateway-ack-timeout: %s", flags.Replace(option.Message))
		}
		return err
	}
	probes := health.Config{Interval: *probeInterval, Fall: *probeFall, Rise: *probeRise}
	if *probeInterval < 0 {
		return fmt.Errorf("--probe-interval: Invalid value: %v: must not be negative", *probeInterval)
	}
	if *probeInterval == 0 {
		var without string
		flag.Visit(func(f *flag.Flag) {
			if f.Name == "probe-fall" || f.Name == "probe-rise" {
				without = f.Name
			}
		})
		if without != "" {
			return fmt.Errorf("--%s: needs --probe-interval (no probes run without it)", without)
		}
	}
	if *probeInterval > 0 {
		if err := probes.Check(); err != nil {
			flags := strings.NewReplacer("Fall:", "--probe-fall:", "Rise:", "--probe-rise:", "Interval:", "--probe-interval:")
			return errors.New(flags.Replace(err.Error()))
		}
	}
	engine, err := egressgw.NewEngine(cfg)
	if err != nil {
		return err
	}
	defer engine.Close()
	if *devices != "" {
		text, err := os.ReadFile(*devices)
		if err != nil {
			return fmt.Errorf("--devices: %w", err)
		}
		if err := engine.SetDevices(text); err != nil {
			return fmt.Errorf("--devices: %s: %w", *devices, err)
		}
	}
	maps, closeMaps, err := mapsFlags.open(engine, cfg)
	if err != nil {
		return err
	}
	defer closeMaps()
	a, err := agent.NewWithState(*node, engine, maps, *state)
	if err != nil {
		return fmt.Errorf("--state: %w", err)
	}
	if err := a.Configure(opts); err != nil {
		return err
	}
	// The DELs queued while the agent was away, before any plugin call can reach it.
	sent, err := queue.Replay(*delQueue, func(req api.DelRequest) error {
		_, err := a.Del(req)
		return err
	})
	if err != nil {
		log.Printf("the DEL queue %s: %v (%d replayed)", *delQueue, err, sent)
	}
	if *probeInterval > 0 {
		icmp, err := health.NewICMP()
		if err != nil {
			return fmt.Errorf("--probe-interval: the probes' raw ICMP socket: %w (needs root)", err)
		}
		defer icmp.Close()
		prober, err := health.NewProber(probes, icmp, a.ProbeTargets, a.ProbeChanged)
		if err != nil {
			return err
		}
		prober.Start()
		defer prober.Stop()
	}
	listener, server, err := a.Listen(*socket)
	if err != nil {
		return fmt.Errorf("--socket: %w", err)
	}
	defer server.Close()
	log.Printf("node %s: listening on %s, maps %s, %d queued DEL(s) replayed; programming starts with the first full list (POST /v1/objects?sync=1)",
		*node, listener.Addr(), maps.Describe(), sent)
	if opts.Publisher != nil {
		// What this node serves as a gateway, again when a publication failed.
		go func() {
			for range time.Tick(2 * time.Second) {
				if err := a.PublishServed(); err != nil {
					log.Print(err)
				}
			}
		}()
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	log.Printf("stopping")
	_ = listener.Close()
	time.Sleep(10 * time.Millisecond)
	return nil
}
