//go:build !egressgw_bpf

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"egresscni/api"
	"egresscni/internal/testkit"
)

var bin string

func TestMain(m *testing.M) {
	dir, remove := testkit.Build("egress-agent-test",
		testkit.Command{Name: "egress-agent", Package: "egresscni/cmd/egress-agent"})
	bin = filepath.Join(dir, "egress-agent")
	code := m.Run()
	remove()
	os.Exit(code)
}

// Every bad argument is refused, naming it, before anything starts.
func TestArgumentsAreChecked(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--node: Required value"},
		{[]string{"--node", "n", "--selection", "fastest"}, `--selection: Unsupported value: "fastest"`},
		{[]string{"--node", "n", "--cilium-version", "1.21"}, `--cilium-version: Unsupported value: "1.21"`},
		{[]string{"--node", "n", "--layout", "v5"}, `--layout: Unsupported value: "v5"`},
		{[]string{"--node", "n", "--devices", filepath.Join(dir, "none.yaml")}, "--devices: open"},
		{[]string{"--node", "n", "--program-on", "later"}, `--program-on: Unsupported value: "later"`},
		{[]string{"--node", "n", "--probe-interval", "-1s"}, "--probe-interval: Invalid value: -1s"},
		{[]string{"--node", "n", "--probe-interval", "100ms", "--probe-fall", "0"}, "--probe-fall: Invalid value: 0"},
		{[]string{"--node", "n", "--probe-interval", "100ms", "--probe-rise", "-2"}, "--probe-rise: Invalid value: -2"},
		{[]string{"--node", "n", "--probe-interval", "1ns"}, "--probe-interval: Invalid value: 1ns: must be at least 10ms"},
		{[]string{"--node", "n", "--probe-fall", "5"}, "--probe-fall: needs --probe-interval"},
		{[]string{"--node", "n", "--gateway-ack-timeout", "5s"}, "--gateway-ack-timeout: needs --cluster-socket"},
		{[]string{"--node", "n", "--gateway-ack-timeout", "-1s", "--cluster-socket", "/x"}, "--gateway-ack-timeout: Invalid value: -1s"},
		{[]string{"--node", "n", "--gateway-ack-timeout", "5s", "--cluster-socket", "/x", "--program-on", "watch"}, "--gateway-ack-timeout: needs --program-on cni"},
		{[]string{"--node", "n", "--devices", writeFile(t, dir, "bad.yaml", "[{name: eth0, index: -1}]")}, "--devices: "},
	} {
		out, err := exec.Command(bin, c.args...).CombinedOutput()
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(string(out), c.want) {
			t.Errorf("%v: %v: %s (want exit 1 and %q)", c.args, err, out, c.want)
		}
	}
}

// The agent serves its socket, answers status, and stops on SIGTERM.
func TestTheAgentServesAndStops(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "agent.sock")
	cmd := exec.Command(bin, "--node", "worker", "--socket", socket, "--state", filepath.Join(dir, "state.json"),
		"--del-queue", filepath.Join(dir, "queue"))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	client := api.NewClient(socket, time.Second)
	var st api.Status
	var err error
	// Up to 10 s: a race-built binary on a busy machine starts slowly.
	for i := 0; i < 1000; i++ {
		if st, err = client.Status(); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || st.Node != "worker" || st.Synced || !strings.Contains(st.Maps, "none") {
		t.Fatalf("status %+v, %v\n%s", st, err, log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "listening on "+socket) {
		t.Fatalf("log: %s", log.String())
	}
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
