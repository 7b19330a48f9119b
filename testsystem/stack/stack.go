// Package stack runs ringbridge's services for the system test on the local Docker Engine: it
// builds their images (compose/build-images.sh, FROM scratch, nothing pulled), starts them with
// compose/test-stack.yml on the host's network, tells when they are ready, fetches their logs,
// and removes every container it made, also those an interrupted earlier run left behind (they
// carry the label io.ringbridge.testsystem).
//
// It drives the docker and docker-compose command-line tools rather than the Engine's API: the
// compose file is the stack's description that people also run by hand, and docker-compose is
// what reads it.
package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// Label marks every container of the stack; LabelRun carries the run's id.
const (
	Label    = "io.ringbridge.testsystem"
	LabelRun = "io.ringbridge.testsystem.run"
)

// ProjectPrefix starts the compose project name of a run: ProjectPrefix + the run's id, so two
// runs (a developer's and a Go test's) never recreate each other's containers.
const ProjectPrefix = "ringbridge-testsystem-"

// Options configure a Stack.
type Options struct {
	// Root is the repository's root: compose/build-images.sh and the compose file are found there.
	Root string
	// File is the compose file; default Root/compose/test-stack.yml.
	File string
	// Project is the compose project name; default ProjectPrefix + RunID.
	Project string
	// RunID labels this run's containers: "<unix time>-<pid>" (see RunID), so a later run can
	// tell a leftover of a dead run from the containers of one still running.
	RunID string
	// Tag is the image tag; default latest (build-images.sh tags every build latest too).
	Tag string
}

// Stack is the services of one run.
type Stack struct {
	opt     Options
	compose []string
	log     logrus.FieldLogger
}

// New checks that the Docker Engine answers and docker-compose is installed.
func New(ctx context.Context, opt Options, log logrus.FieldLogger) (*Stack, error) {
	if opt.File == "" {
		opt.File = filepath.Join(opt.Root, "compose", "test-stack.yml")
	}
	if opt.RunID == "" {
		opt.RunID = RunID()
	}
	if opt.Project == "" {
		opt.Project = ProjectPrefix + opt.RunID
	}
	if opt.Tag == "" {
		opt.Tag = "latest"
	}
	if _, err := os.Stat(opt.File); err != nil {
		return nil, fmt.Errorf("stack: compose file: %w", err)
	}
	s := &Stack{opt: opt, log: log}
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, errors.New("stack: the docker command is not installed: install docker.io (Docker Engine 20.10 or newer)")
	}
	pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if out, err := s.run(pctx, nil, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		return nil, fmt.Errorf("stack: the Docker Engine does not answer (%s): start it (dockerd) or give this user access to /var/run/docker.sock", firstLine(out, err))
	}
	switch {
	case lookPath("docker-compose"):
		s.compose = []string{"docker-compose"}
	default:
		if _, err := s.run(pctx, nil, "docker", "compose", "version"); err != nil {
			return nil, errors.New("stack: neither docker-compose nor the docker compose plugin is installed: install docker-compose")
		}
		s.compose = []string{"docker", "compose"}
	}
	return s, nil
}

func lookPath(name string) bool { _, err := exec.LookPath(name); return err == nil }

// Image is the image name of a service.
func (s *Stack) Image(service string) string { return "ringbridge/" + service + ":" + s.opt.Tag }

// EnsureImages builds the services' images with compose/build-images.sh: always when build is
// true (the Go and Docker build caches make an unchanged service quick), otherwise only those
// missing, so a run without Docker images prebuilt still works.
func (s *Stack) EnsureImages(ctx context.Context, services []string, build bool) error {
	var todo []string
	for _, svc := range services {
		if build || !s.imageExists(ctx, svc) {
			todo = append(todo, svc)
		}
	}
	if len(todo) == 0 {
		s.log.WithField("services", strings.Join(services, " ")).Info("using the images built before (--no-build)")
		return nil
	}
	s.log.WithField("services", strings.Join(todo, " ")).Info("building images")
	start := time.Now()
	args := append([]string{filepath.Join(s.opt.Root, "compose", "build-images.sh")}, todo...)
	out, err := s.run(ctx, nil, "bash", args...)
	if err != nil {
		return fmt.Errorf("stack: building %s: %w\n%s", strings.Join(todo, ", "), err, tail(out, 30))
	}
	s.log.WithField("took", time.Since(start).Round(100*time.Millisecond).String()).Info("images built")
	for _, svc := range todo {
		if !s.imageExists(ctx, svc) {
			return fmt.Errorf("stack: compose/build-images.sh built no %s", s.Image(svc))
		}
	}
	return nil
}

func (s *Stack) imageExists(ctx context.Context, service string) bool {
	_, err := s.run(ctx, nil, "docker", "image", "inspect", "--format", "{{.Id}}", s.Image(service))
	return err == nil
}

// Env is what one start of the stack runs with.
type Env struct {
	// Config is the suite's config.yaml (absolute), mounted read-only.
	Config string
	// EnvFile holds the RINGBRIDGE_* overrides.
	EnvFile string
}

func (s *Stack) environ(e Env) []string {
	return append(os.Environ(),
		"RINGBRIDGE_TEST_CONFIG="+e.Config,
		"RINGBRIDGE_TEST_ENV_FILE="+e.EnvFile,
		"RINGBRIDGE_TEST_RUN="+s.opt.RunID,
		"RINGBRIDGE_TEST_TAG="+s.opt.Tag,
	)
}

func (s *Stack) composeArgs(args ...string) []string {
	base := append([]string(nil), s.compose[1:]...)
	base = append(base, "-p", s.opt.Project, "-f", s.opt.File)
	return append(base, args...)
}

// Up (re)creates the services with env: containers of an earlier start are replaced, so each
// suite's services start fresh with the suite's config.
func (s *Stack) Up(ctx context.Context, e Env, services ...string) error {
	args := s.composeArgs(append([]string{"up", "-d", "--force-recreate", "--no-build", "--remove-orphans"}, services...)...)
	out, err := s.run(ctx, s.environ(e), s.compose[0], args...)
	if err != nil {
		return fmt.Errorf("stack: starting %s: %w\n%s", strings.Join(services, ", "), err, tail(out, 20))
	}
	return nil
}

// Remove stops and removes services' containers: a suite's services must not outlive its
// simulators (they would retry against nothing), nor hold the ports the next suite's need.
func (s *Stack) Remove(ctx context.Context, e Env, services ...string) error {
	args := s.composeArgs(append([]string{"rm", "--stop", "--force", "-v"}, services...)...)
	if out, err := s.run(ctx, s.environ(e), s.compose[0], args...); err != nil {
		return fmt.Errorf("stack: removing %s: %w\n%s", strings.Join(services, ", "), err, tail(out, 10))
	}
	return nil
}

// State is what Docker says of a service's container: running, exited (with its code), or
// missing.
func (s *Stack) State(ctx context.Context, service string) (string, error) {
	id, err := s.containerID(ctx, service)
	if err != nil || id == "" {
		return "missing", err
	}
	out, err := s.run(ctx, nil, "docker", "inspect", "--format", "{{.State.Status}} (exit code {{.State.ExitCode}})", id)
	if err != nil {
		return "", fmt.Errorf("stack: inspecting %s: %w", service, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (s *Stack) containerID(ctx context.Context, service string) (string, error) {
	out, err := s.run(ctx, nil, "docker", "ps", "-aq",
		"--filter", "label=com.docker.compose.project="+s.opt.Project,
		"--filter", "label=com.docker.compose.service="+service,
		"--filter", "label="+LabelRun+"="+s.opt.RunID)
	if err != nil {
		return "", fmt.Errorf("stack: listing containers: %w", err)
	}
	fields := strings.Fields(string(out))
	if len(fields) == 0 {
		return "", nil
	}
	return fields[0], nil
}

// WaitReady polls a service's /readyz at url until it answers 200, its container stops, or
// timeout passes; the error says which, with the service's last log lines.
func (s *Stack) WaitReady(ctx context.Context, service, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		// The container first: an answer on the port from some other process (a leftover
		// container, a service run by hand) must not pass for this one's.
		if st, err := s.State(context.WithoutCancel(ctx), service); err == nil && !strings.HasPrefix(st, "running") {
			return fmt.Errorf("%s is not running: %s\n%s", service, st, s.Logs(context.WithoutCancel(ctx), service, 20))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(b.String()))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready after %s (%s says: %s)\n%s", service, timeout, url, clip(last, 300), s.Logs(context.WithoutCancel(ctx), service, 20))
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Logs returns the last lines a service's container wrote ("" when there is none).
func (s *Stack) Logs(ctx context.Context, service string, lines int) string {
	id, err := s.containerID(ctx, service)
	if err != nil || id == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, _ := s.run(ctx, nil, "docker", "logs", "--tail", fmt.Sprint(lines), id)
	return indent(strings.TrimRight(string(out), "\n"), "    "+service+" | ")
}

// Down removes the run's containers. It runs with its own deadline, so an interrupted run
// (its context cancelled) still cleans up.
func (s *Stack) Down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// compose wants the variables the file names and an env_file that is a regular file, even to
	// take the stack down.
	empty, err := os.CreateTemp("", "testsystem-down-*.env")
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	empty.Close()
	defer os.Remove(empty.Name())
	env := s.environ(Env{Config: empty.Name(), EnvFile: empty.Name()})
	_, derr := s.run(ctx, env, s.compose[0], s.composeArgs("down", "--remove-orphans", "--timeout", "5")...)
	// Whatever compose missed (another project name, a half-created container) goes by label.
	if err := s.removeLabelled(ctx, LabelRun+"="+s.opt.RunID); err != nil {
		return err
	}
	if derr != nil {
		s.log.WithError(derr).Warn("docker-compose down failed; containers removed by label")
	}
	return nil
}

// RunID names a run: the time and this process's id.
func RunID() string { return fmt.Sprintf("%d-%d", time.Now().Unix(), os.Getpid()) }

// RemoveLeftovers removes stack containers of earlier runs that did not clean up (killed with
// SIGKILL, a machine that lost power): they would hold the ports this run needs. Containers of a
// run whose process still lives on this machine are left alone.
func (s *Stack) RemoveLeftovers(ctx context.Context) error {
	out, err := s.run(ctx, nil, "docker", "ps", "-a", "--filter", "label="+Label+"=stack",
		"--format", "{{.ID}} {{.Label \""+LabelRun+"\"}}")
	if err != nil {
		return fmt.Errorf("stack: listing stack containers: %w", err)
	}
	var dead []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		id, run, _ := strings.Cut(strings.TrimSpace(line), " ")
		if id == "" || run == s.opt.RunID || runAlive(run) {
			continue
		}
		dead = append(dead, id)
	}
	if len(dead) == 0 {
		return nil
	}
	s.log.WithField("containers", len(dead)).Info("removing stack containers left by runs that ended without cleaning up")
	if out, err := s.run(ctx, nil, "docker", append([]string{"rm", "-f"}, dead...)...); err != nil {
		return fmt.Errorf("stack: removing containers %s: %w (%s)", strings.Join(dead, " "), err, firstLine(out, err))
	}
	return nil
}

// runAlive tells whether the process of a run id ("<time>-<pid>") still runs here.
func runAlive(run string) bool {
	_, pidText, ok := strings.Cut(run, "-")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 {
		return false // "manual" (a stack started by hand) or unreadable: not a live run of ours
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// A process killed while its parent does not reap it lingers as a zombie: dead for us.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return true
}

func (s *Stack) removeLabelled(ctx context.Context, label string) error {
	out, err := s.run(ctx, nil, "docker", "ps", "-aq", "--filter", "label="+label)
	if err != nil {
		return fmt.Errorf("stack: listing containers labelled %s: %w", label, err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	s.log.WithField("containers", len(ids)).WithField("label", label).Info("removing stack containers")
	if out, err := s.run(ctx, nil, "docker", append([]string{"rm", "-f"}, ids...)...); err != nil {
		return fmt.Errorf("stack: removing containers %s: %w (%s)", strings.Join(ids, " "), err, firstLine(out, err))
	}
	return nil
}

// run runs a command and returns its combined output.
func (s *Stack) run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = s.opt.Root
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && ctx.Err() != nil {
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ctx.Err())
	}
	if err != nil {
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return err.Error()
	}
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	return s
}

func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
