package stack

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestRunAlive(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, run string
		alive     bool
	}{
		{"this-process", "1795600000-" + strconv.Itoa(os.Getpid()), true},
		{"ended-process", "1795600000-" + strconv.Itoa(dead.Process.Pid), false},
		{"started-by-hand", "manual", false},
		{"unreadable", "1795600000-x", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := runAlive(c.run); got != c.alive {
				t.Errorf("runAlive(%q) = %v, want %v", c.run, got, c.alive)
			}
		})
	}
}

func TestRunIDNamesThisProcess(t *testing.T) {
	id := RunID()
	if !strings.HasSuffix(id, "-"+strconv.Itoa(os.Getpid())) || !runAlive(id) {
		t.Errorf("RunID() = %q: want <time>-<this pid>, alive", id)
	}
}

func TestNewWithoutComposeFile(t *testing.T) {
	_, err := New(context.Background(), Options{Root: t.TempDir()}, logrus.New())
	if err == nil || !strings.Contains(err.Error(), "compose file") {
		t.Errorf("New without compose/test-stack.yml: %v", err)
	}
}
