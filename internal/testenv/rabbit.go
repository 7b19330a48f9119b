package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultRabbitURL is the broker of the test machine: Debian's rabbitmq-server with its default
// guest account, which only accepts connections from localhost.
const DefaultRabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// RabbitURL returns the AMQP URL of the test broker: $RINGBRIDGE_AMQP_URL, or DefaultRabbitURL.
// It fails the test when the broker's port does not answer. It also registers the test as a user
// of the broker until it ends, so that RestartRabbit in another test process waits for it (and it
// waits for a restart in progress) — see RestartRabbit.
func RabbitURL(t testing.TB) string {
	t.Helper()
	raw := rabbitURL()
	lock.acquireShared(t)
	addr, err := rabbitAddr(raw)
	if err != nil {
		t.Fatalf("RINGBRIDGE_AMQP_URL: %v", err)
	}
	if err := dialTCP(addr, 3*time.Second); err != nil {
		t.Fatalf("RabbitMQ is not reachable at %s (%v): run `bash .ci/run` or start rabbitmq-server", addr, err)
	}
	return raw
}

// RestartRabbit restarts the broker for real and returns when it accepts AMQP connections again.
// Every connection is closed by the broker (clients see CONNECTION_FORCED), queues are stopped and
// recovered from disk: durable queues and persistent messages survive, like a real restart.
//
// It uses `rabbitmqctl stop_app` + `start_app` rather than restarting the service: that stops and
// starts the RabbitMQ application inside the running Erlang node, which is what a broker restart
// means to a client, takes about a second instead of many, and needs neither systemd (absent in
// containers and CI) nor root. Set RINGBRIDGE_RABBITMQCTL to run another command (e.g.
// "docker exec rabbitmq rabbitmqctl").
//
// A test that calls it must not run in parallel with other broker tests of its package (do not
// call t.Parallel in it: Go runs the non-parallel tests of a package while no parallel one is
// running). Across packages, which `go test ./...` runs in parallel processes, a lock file makes
// RestartRabbit wait until no test of another process holds a RabbitURL, and makes RabbitURL in
// other processes wait until the restart is over.
func RestartRabbit(t testing.TB) {
	t.Helper()
	raw := rabbitURL()
	addr, err := rabbitAddr(raw)
	if err != nil {
		t.Fatalf("RINGBRIDGE_AMQP_URL: %v", err)
	}
	waitStart := time.Now()
	release := lock.acquireExclusive(t)
	defer release()
	if w := time.Since(waitStart); w > 100*time.Millisecond {
		t.Logf("RestartRabbit waited %s for other test processes to finish with the broker", w.Round(time.Millisecond))
	}

	start := time.Now()
	rabbitmqctl(t, "stop_app")
	rabbitmqctl(t, "start_app")
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := dialTCP(addr, time.Second)
		if err == nil {
			var conn *amqp.Connection
			conn, err = amqp.DialConfig(raw, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
			if err == nil {
				_ = conn.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("RabbitMQ at %s did not come back within 60s after start_app: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("RabbitMQ restarted in %s", time.Since(start).Round(time.Millisecond))
}

func rabbitURL() string {
	if u := os.Getenv("RINGBRIDGE_AMQP_URL"); u != "" {
		return u
	}
	return DefaultRabbitURL
}

// rabbitAddr returns host:port of an AMQP URL; its errors never contain the password.
func rabbitAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a valid URL")
	}
	port := u.Port()
	if port == "" {
		port = "5672"
		if u.Scheme == "amqps" {
			port = "5671"
		}
	}
	host := u.Hostname()
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port), nil
}

func dialTCP(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	return c.Close()
}

func rabbitmqctl(t testing.TB, args ...string) {
	t.Helper()
	cmdline := []string{"rabbitmqctl"}
	if c := os.Getenv("RINGBRIDGE_RABBITMQCTL"); c != "" {
		cmdline = strings.Fields(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmdline[0], append(cmdline[1:], args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", strings.Join(cmdline, " "), strings.Join(args, " "), err, out)
	}
}

// brokerLock coordinates broker users and restarts across test processes with two flock(2)
// files. Users hold the main file shared; a restart holds it exclusively. The gate gives the
// restart priority: a restart holds the gate exclusively while it waits, and a new user passes
// through the gate (shared) before taking the main lock, so a steady stream of users cannot
// starve a restart.
//
// Within one process the main lock is held once, shared by all the tests that use the broker
// (users counts them); RestartRabbit releases it for its duration, since the other tests of its
// process are, by the rule above, paused or not yet started.
type brokerLock struct {
	mu         sync.Mutex
	cond       *sync.Cond
	main, gate *os.File
	users      int
	restarting bool
}

var lock = func() *brokerLock {
	l := &brokerLock{}
	l.cond = sync.NewCond(&l.mu)
	return l
}()

func (l *brokerLock) open(t testing.TB) {
	t.Helper()
	if l.main != nil {
		return
	}
	dir := os.TempDir()
	var err error
	if l.main, err = os.OpenFile(filepath.Join(dir, "ringbridge-rabbitmq.lock"), os.O_CREATE|os.O_RDWR, 0o666); err != nil {
		t.Fatalf("broker lock: %v", err)
	}
	if l.gate, err = os.OpenFile(filepath.Join(dir, "ringbridge-rabbitmq.gate"), os.O_CREATE|os.O_RDWR, 0o666); err != nil {
		t.Fatalf("broker lock: %v", err)
	}
}

func flock(t testing.TB, f *os.File, how int) {
	t.Helper()
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("flock %s: %v", f.Name(), err)
		}
		return
	}
}

func (l *brokerLock) acquireShared(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.restarting {
		l.cond.Wait()
	}
	l.open(t)
	if l.users == 0 {
		flock(t, l.gate, syscall.LOCK_SH)
		flock(t, l.main, syscall.LOCK_SH)
		flock(t, l.gate, syscall.LOCK_UN)
	}
	l.users++
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.users--
		if l.users == 0 && !l.restarting {
			_ = syscall.Flock(int(l.main.Fd()), syscall.LOCK_UN)
		}
	})
}

func (l *brokerLock) acquireExclusive(t testing.TB) (release func()) {
	t.Helper()
	l.mu.Lock()
	for l.restarting {
		l.cond.Wait()
	}
	l.open(t)
	l.restarting = true
	if l.users > 0 {
		flock(t, l.main, syscall.LOCK_UN)
	}
	l.mu.Unlock()

	undo := func() {
		l.mu.Lock()
		if l.users > 0 {
			_ = syscall.Flock(int(l.main.Fd()), syscall.LOCK_SH)
		} else {
			_ = syscall.Flock(int(l.main.Fd()), syscall.LOCK_UN)
		}
		_ = syscall.Flock(int(l.gate.Fd()), syscall.LOCK_UN)
		l.restarting = false
		l.cond.Broadcast()
		l.mu.Unlock()
	}

	flock(t, l.gate, syscall.LOCK_EX)
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := syscall.Flock(int(l.main.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return undo
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			undo()
			t.Fatalf("flock %s: %v", l.main.Name(), err)
		}
		if time.Now().After(deadline) {
			undo()
			t.Fatalf("RestartRabbit: tests in another process kept using RabbitMQ for 90s; not restarting it under them")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
