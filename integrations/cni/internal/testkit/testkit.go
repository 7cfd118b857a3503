// Package testkit is what the module's tests share: the skip-or-fail rule of the kernel tests
// and the build of the commands a test runs as processes.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// NeedPrivilege stops t for want of a privilege (root, a bpffs, a network namespace, a raw
// socket): a skip saying msg, or a failure under EGRESS_REQUIRE_BPF=1 (CI runs every kernel
// test).
func NeedPrivilege(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("EGRESS_REQUIRE_BPF") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Command is a command a test runs as a process: its file name, its package, its build tags.
type Command struct {
	Name, Package, Tags string
}

// Build builds commands into a new temporary directory (for TestMain: it panics when a build
// fails): the directory, and what removes it.
func Build(prefix string, commands ...Command) (string, func()) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		panic(err)
	}
	for _, c := range commands {
		args := []string{"build"}
		if c.Tags != "" {
			args = append(args, "-tags", c.Tags)
		}
		args = append(args, "-o", filepath.Join(dir, c.Name), c.Package)
		cmd := exec.Command("go", args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			os.RemoveAll(dir)
			panic(fmt.Sprintf("building %s: %v", c.Package, err))
		}
	}
	return dir, func() { os.RemoveAll(dir) }
}
