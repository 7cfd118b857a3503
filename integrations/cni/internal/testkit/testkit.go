// Package testkit is what the module's tests share: the skip-or-fail rule of the kernel tests
// and the build of the commands a test runs as processes.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// NeedPrivilege stops t for want of a privilege (root, a bpffs, a network namespace, a raw
// socket): a skip saying msg (recorded by RecordSkip), or a failure under EGRESS_REQUIRE_BPF=1
// (CI runs every kernel test).
func NeedPrivilege(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("EGRESS_REQUIRE_BPF") == "1" {
		t.Fatal(msg)
	}
	RecordSkip(t, msg)
	t.Skip(msg)
}

// RecordSkip records that the kernel test t skips, and why, as one line "go TEST: WHY"
// appended to the file EGRESS_SKIP_LOG names, when it is set (the test command sets it and
// counts the lines). One append (O_APPEND) per line: tests in parallel, in this process or
// others, do not mix their lines. A file that cannot be written fails t (a skip must not go
// uncounted).
func RecordSkip(t testing.TB, why string) {
	t.Helper()
	log := os.Getenv("EGRESS_SKIP_LOG")
	if log == "" {
		return
	}
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		_, err = f.WriteString("go " + t.Name() + ": " + strings.Join(strings.Fields(why), " ") + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("recording its skip in EGRESS_SKIP_LOG=%s: %v", log, err)
	}
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
