// Command cni-add does what a CNI ADD does with the engine: it loads a cluster snapshot,
// takes the node's maps as already programmed, receives a new pod on the command line,
// upserts it, and prints the exact map operations to write for it — before the pod's first
// packet.
//
//	go run ./examples/cni-add -f ../../examples/snapshots/seed-gateway-group.yaml \
//	    -uid 7d0c6f3e-0000-4000-8000-000000000001 -namespace default \
//	    -label app=nginx -ip 172.22.48.77 -pod-node 172.22.48.48
package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"egressgw"
)

type labels map[string]string

func (l labels) String() string { return fmt.Sprint(map[string]string(l)) }

func (l labels) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	l[k] = v
	return nil
}

type addrs []netip.Addr

func (a *addrs) String() string { return fmt.Sprint(*a) }

func (a *addrs) Set(s string) error {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return err
	}
	*a = append(*a, ip)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "cni-add:", err)
		var pe *egressgw.PolicyError
		if errors.As(err, &pe) {
			for _, f := range pe.Fields {
				fmt.Fprintf(os.Stderr, "  %s: %s\n", f.Path, f.Reason)
			}
		}
		os.Exit(1)
	}
}

func run() error {
	snapshot := flag.String("f", "", "snapshot file (YAML/JSON) or a kubectl dump (required)")
	node := flag.String("node", "", "the node whose maps are computed (default: the snapshot's localNode)")
	consistent := flag.Bool("consistent", false, "consistent gateway selection instead of Cilium's")
	ep := egressgw.Endpoint{Labels: labels{}, NamespaceLabels: labels{}}
	flag.StringVar(&ep.UID, "uid", "", "the pod's UID (required)")
	flag.StringVar(&ep.Namespace, "namespace", "default", "the pod's namespace")
	flag.StringVar(&ep.ServiceAccount, "service-account", "", "the pod's service account")
	flag.StringVar(&ep.Node, "pod-node", "", "the node the pod runs on")
	flag.Var(labels(ep.Labels), "label", "a pod label KEY=VALUE (repeatable)")
	flag.Var(labels(ep.NamespaceLabels), "namespace-label", "a namespace label KEY=VALUE (repeatable; default: kubernetes.io/metadata.name=NAMESPACE)")
	flag.Var((*addrs)(&ep.IPs), "ip", "a pod IP (repeatable, required)")
	flag.Parse()
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", flag.Arg(0))
	case *snapshot == "":
		return errors.New("-f SNAPSHOT is required")
	case ep.UID == "":
		return errors.New("-uid is required")
	case len(ep.IPs) == 0:
		return errors.New("-ip is required")
	}
	if len(ep.NamespaceLabels) == 0 && ep.Namespace != "" {
		ep.NamespaceLabels["kubernetes.io/metadata.name"] = ep.Namespace
	}
	text, err := os.ReadFile(*snapshot)
	if err != nil {
		return err
	}
	cfg := egressgw.Config{LocalNode: *node}
	if *consistent {
		cfg.Selection = egressgw.SelectionConsistent
	}
	engine, err := egressgw.FromSnapshot(text, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", *snapshot, err)
	}
	defer engine.Close()

	// The agent programmed the node's maps before this pod: take that plan as written.
	initial, err := engine.TakePlan()
	if err != nil {
		return err
	}
	if err := engine.Ack(initial, initial.Len()); err != nil {
		return err
	}

	// CNI ADD: the pod's entries at once.
	if err := engine.UpsertEndpoint(ep); err != nil {
		return err
	}
	plan, err := engine.TakePlan()
	if err != nil {
		return err
	}
	fmt.Printf("%d map operations for pod %s:\n", plan.Len(), ep.UID)
	for _, op := range plan.Ops {
		fmt.Printf("%s %s key %s", op.Action, op.Map, hex.EncodeToString(op.Key))
		if op.Action == egressgw.ActionUpsert {
			fmt.Printf(" value %s", hex.EncodeToString(op.Value))
		}
		fmt.Println()
	}
	// What the datapath will do with the pod's traffic: its entries, decoded.
	entries, err := engine.Entries()
	if err != nil {
		return err
	}
	for _, entry := range entries {
		for _, ip := range ep.IPs {
			if entry.Source == ip {
				fmt.Printf("entry %s -> %s: egress IP %s, gateway %s, ifindex %d\n",
					entry.Source, entry.Destination, entry.EgressIP, entry.GatewayIP, entry.EgressIfindex)
			}
		}
	}
	// The agent writes the operations to the pinned maps, then acknowledges them.
	return engine.Ack(plan, plan.Len())
}
