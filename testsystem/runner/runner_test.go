package runner

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/testenv"
	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	"github.com/ringbridge/ringbridge/testsystem/expect"
	"github.com/ringbridge/ringbridge/testsystem/stack"
	"github.com/ringbridge/ringbridge/testsystem/suite"
)

// TestRunEndToEnd runs testdata/suites/amo/tiny for real: images on the local Docker Engine,
// the simulators in this process, RabbitMQ and Redis from the host. One of its calls expects
// the wrong duration on purpose, so the test sees a mismatch found and reported too.
//
// In CI (CI=true) an unreachable Docker Engine fails the test: the system test must not
// silently stop running there. Elsewhere it skips.
func TestRunEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the end-to-end run takes about a minute")
	}
	dockerReachable(t)
	testenv.RabbitURL(t) // also makes a broker restart in another package's test wait for us
	redisAddr := testenv.RedisAddr(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	junitFile := filepath.Join(t.TempDir(), "junit.xml")
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(testWriter{t})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Options{
		Root:      root,
		SuitesDir: "testdata/suites",
		NoBuild:   true, // builds the images only if they are missing
		JUnit:     junitFile,
		// A vhost of its own: `testsystem run` may be running beside this test.
		AMQPURL:   "amqp://guest:guest@127.0.0.1:5672/ringbridge-testsystem-gotest",
		RedisAddr: redisAddr,
		Out:       &out,
		Log:       log,
	})
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum.Passed != 2 || sum.Failed != 1 || sum.Line() != "2 passed, 1 failed" {
		t.Errorf("%s; want 2 passed (01, 02) and 1 failed (03, wrong on purpose)", sum.Line())
	}
	for _, want := range []string{
		"PASS  amo/tiny/01-answered", "PASS  amo/tiny/02-internal",
		"FAIL  amo/tiny/03-wrong-on-purpose", "1 missing",
		`✗ 0.duration  want "13", got "12"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	b, err := os.ReadFile(junitFile)
	if err != nil || !bytes.Contains(b, []byte(`tests="3" failures="1"`)) || !bytes.Contains(b, []byte(`<testcase name="03-wrong-on-purpose" classname="testsystem.amo.tiny"`)) {
		t.Errorf("JUnit file: %v\n%s", err, b)
	}
	// Nothing of the run is left on the Docker Engine.
	left, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+stack.Label+"=stack", "--filter", "label=com.docker.compose.project").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range strings.Fields(string(left)) {
		lbl, _ := exec.Command("docker", "inspect", "--format", `{{index .Config.Labels "`+stack.LabelRun+`"}}`, id).Output()
		if strings.HasSuffix(strings.TrimSpace(string(lbl)), "-"+strconv.Itoa(os.Getpid())) {
			t.Errorf("container %s of this run is still there", id)
		}
	}
}

// dockerReachable skips the test without a Docker Engine, except in CI, where it fails it.
func dockerReachable(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err == nil {
		return
	}
	msg := "the Docker Engine is not reachable (" + strings.TrimSpace(string(out)) + "; " + err.Error() + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + ": CI must run the system test; start dockerd")
	}
	t.Skip(msg)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// journal is a crmSim that only has a journal, for waitQuiet.
type journal struct{ reqs func() []crmsim.Request }

func (j journal) Requests(since int) []crmsim.Request {
	var out []crmsim.Request
	for _, r := range j.reqs() {
		if r.Seq > since {
			out = append(out, r)
		}
	}
	return out
}
func (journal) Env() map[string]string                      { return nil }
func (journal) Ignore() []string                            { return nil }
func (journal) Batched() bool                               { return false }
func (journal) Install(context.Context, *suite.Suite) error { return nil }
func (journal) CallID([]crmsim.Request) string              { return "" }
func (journal) Close() error                                { return nil }

func TestWaitQuiet(t *testing.T) {
	start := time.Now()
	// A request every 100 ms for 600 ms, then silence.
	j := journal{reqs: func() []crmsim.Request {
		n := min(int(time.Since(start)/(100*time.Millisecond)), 6)
		out := make([]crmsim.Request, n)
		for i := range out {
			out[i] = crmsim.Request{Seq: i + 1}
		}
		return out
	}}
	cases := []struct {
		name        string
		settle, max time.Duration
		quiet       bool
		atLeast     time.Duration
	}{
		{"settles-after-the-last-request", 300 * time.Millisecond, 5 * time.Second, true, 850 * time.Millisecond},
		{"busy-past-max", 300 * time.Millisecond, 200 * time.Millisecond, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start = time.Now()
			quiet := waitQuiet(context.Background(), j, c.settle, c.max)
			if quiet != c.quiet || time.Since(start) < c.atLeast {
				t.Errorf("quiet %v after %s; want %v after at least %s", quiet, time.Since(start), c.quiet, c.atLeast)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	res := &expect.Result{Problems: []expect.Problem{{Kind: expect.Missing}, {Kind: expect.Unexpected}, {Kind: expect.Unexpected}}}
	if got := summarize(res); got != "1 missing, 2 unexpected" {
		t.Errorf("summarize = %q", got)
	}
}
