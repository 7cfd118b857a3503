// Command egress-cni-run is a container runtime's CNI call for one pod, through the CNI
// project's libcni — what containerd or CRI-O does when a pod starts or stops: it runs a
// network list's plugins in order (ADD, CHECK) or in reverse (DEL) and prints ADD's result.
// The lab creates its pods with it.
//
//	egress-cni-run add|check|del --conflist FILE --netns PATH --container-id ID
//	    [--ifname eth0] [--args K=V;K=V] [--plugin-path DIR:DIR]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "egress-cni-run:", err)
		os.Exit(1)
	}
}

func run(argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("usage: egress-cni-run add|check|del --conflist FILE --netns PATH --container-id ID [--ifname NAME] [--args K=V;...] [--plugin-path DIRS]")
	}
	command := argv[0]
	flags := flag.NewFlagSet("egress-cni-run", flag.ContinueOnError)
	conflist := flags.String("conflist", "", "the network list (JSON)")
	netns := flags.String("netns", "", "the pod's network namespace (a path)")
	containerID := flags.String("container-id", "", "the sandbox's id")
	ifname := flags.String("ifname", "eth0", "the pod's interface")
	args := flags.String("args", "", "CNI_ARGS, K=V;K=V")
	pluginPath := flags.String("plugin-path", "/usr/lib/cni:/opt/cni/bin", "where the plugins are, DIR:DIR")
	if err := flags.Parse(argv[1:]); err != nil {
		return err
	}
	for name, value := range map[string]string{"--conflist": *conflist, "--netns": *netns, "--container-id": *containerID} {
		if value == "" {
			return fmt.Errorf("%s: Required value", name)
		}
	}
	text, err := os.ReadFile(*conflist)
	if err != nil {
		return fmt.Errorf("--conflist: %w", err)
	}
	list, err := libcni.ConfListFromBytes(text)
	if err != nil {
		return fmt.Errorf("--conflist: %s: %w", *conflist, err)
	}
	rt := &libcni.RuntimeConf{ContainerID: *containerID, NetNS: *netns, IfName: *ifname}
	for _, pair := range strings.Split(*args, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return fmt.Errorf("--args: %q: want K=V", pair)
		}
		rt.Args = append(rt.Args, [2]string{k, v})
	}
	dirs := filepath.SplitList(*pluginPath)
	cni := libcni.NewCNIConfig(dirs, nil)
	ctx := context.Background()
	switch command {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(result)
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	}
	return fmt.Errorf("%q: want add, check or del", command)
}
