// Package runner is `testsystem run`: it builds the service images, and for each suite starts the
// simulated PBX and CRM in this process, (re)starts ami-gateway and the suite's connector on the
// local Docker Engine with the suite's config, plays each test call, waits until the CRM's
// journal settles, compares it with the call's expectations, and reports: one line per call, a
// JUnit XML file, and the line "N passed, N failed".
//
// Calls are played one after another, so the requests the CRM receives between a call's start
// and the moment its journal settles are that call's requests.
package runner

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/callevent"
	"github.com/ringbridge/ringbridge/testsystem/amisim"
	"github.com/ringbridge/ringbridge/testsystem/expect"
	"github.com/ringbridge/ringbridge/testsystem/junit"
	"github.com/ringbridge/ringbridge/testsystem/stack"
	"github.com/ringbridge/ringbridge/testsystem/suite"
)

// Defaults of Options.
const (
	DefaultSpeed        = 10
	DefaultSettle       = 1500 * time.Millisecond
	DefaultReadyTimeout = 90 * time.Second
	// maxSettle bounds the wait for a CRM that keeps receiving requests.
	maxSettle = 30 * time.Second
	// endedTimeout is how long after the last AMI event the gateway has to publish the call's end.
	endedTimeout = 20 * time.Second
)

// Options configure a run.
type Options struct {
	// Root is the repository's root (compose/ is there).
	Root string
	// SuitesDir holds <crm>/<suite>/; default Root/testsystem/suites.
	SuitesDir string
	// CRM, when set, runs only that CRM's suites; Suites, when set, only those (name or crm/name).
	CRM    suite.CRM
	Suites []string
	// JUnit is where the JUnit XML goes; empty: none.
	JUnit string
	// NoBuild uses the images built before, building only those missing.
	NoBuild bool
	// Speed plays calls this many times faster than real time (default DefaultSpeed). Times in
	// the call events come from the events themselves, so durations do not change with it.
	Speed float64
	// Settle is how long the CRM must receive nothing before a call is compared (default
	// DefaultSettle; a call's own settle wins).
	Settle time.Duration
	// AMQPURL is the broker the services use (default DefaultAMQPURL).
	AMQPURL string
	// RedisAddr is the Redis the services use (default 127.0.0.1:6379).
	RedisAddr string
	// ReadyTimeout bounds the wait for the services' /readyz after each start.
	ReadyTimeout time.Duration
	// Out gets one line per call and the final count.
	Out io.Writer
	Log logrus.FieldLogger
}

func (o *Options) defaults() {
	if o.SuitesDir == "" {
		o.SuitesDir = filepath.Join(o.Root, "testsystem", "suites")
	}
	if o.Speed <= 0 {
		o.Speed = DefaultSpeed
	}
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.AMQPURL == "" {
		o.AMQPURL = DefaultAMQPURL
	}
	if o.RedisAddr == "" {
		o.RedisAddr = "127.0.0.1:6379"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		o.Log = l
	}
}

// Summary is what a run found.
type Summary struct {
	Passed, Failed int
	Took           time.Duration
	Report         junit.Report
}

// Line is the run's last line: "N passed, N failed".
func (s *Summary) Line() string { return fmt.Sprintf("%d passed, %d failed", s.Passed, s.Failed) }

// LoadError is a mistake in the suites' files: nothing was started.
type LoadError struct{ Err error }

func (e *LoadError) Error() string { return e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// Run runs the suites. An error means the run could not happen at all (bad suite files: a
// *LoadError, or no Docker Engine); a failing call is not an error but counts in Summary.Failed,
// and a suite whose services do not start fails its calls.
func Run(ctx context.Context, opt Options) (*Summary, error) {
	opt.defaults()
	start := time.Now()
	suites, err := suite.LoadAll(relative(opt.SuitesDir), opt.CRM, opt.Suites)
	if err != nil {
		return nil, &LoadError{Err: err}
	}
	r := &run{opt: opt, log: opt.Log, gen: amisim.NewGenerator(), id: stack.RunID()}
	sum := &Summary{Report: junit.Report{Name: "ringbridge testsystem"}}
	defer func() { sum.Took = time.Since(start) }()

	// Runs whose suites use the same ports (the same suites, from any checkout) take turns.
	unlock, err := lockPorts(ctx, suites, opt.Log)
	if err != nil {
		return nil, err
	}
	defer unlock()

	setupErr := r.setup(ctx, suites)
	defer r.teardown()
	for _, s := range suites {
		var js junit.Suite
		switch {
		case setupErr != nil:
			js = r.failSuite(s, time.Now(), "the run could not start", setupErr.Error())
		case r.buildErr[s.CRM] != nil:
			js = r.failSuite(s, time.Now(), "the "+s.CRM.Service()+" image did not build", r.buildErr[s.CRM].Error())
		default:
			js = r.suite(ctx, s)
		}
		sum.Report.Suites = append(sum.Report.Suites, js)
		failed := js.Failed()
		sum.Failed += failed
		sum.Passed += len(js.Cases) - failed
	}
	if opt.JUnit != "" {
		if err := junit.Write(opt.JUnit, sum.Report); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// run is one run's shared parts.
type run struct {
	opt   Options
	log   logrus.FieldLogger
	gen   *amisim.Generator
	id    string
	stack *stack.Stack
	redis *redisDB
	tmp   string
	// streamAt is when the next call may start in the simulated PBX's time.
	streamAt time.Time
	// buildErr is why a CRM's connector image did not build.
	buildErr map[suite.CRM]error
	// broker is held during each suite (see brokerLock).
	broker *brokerLock
	suites int
}

// setup prepares what every suite uses: Docker, the images, the Redis database, the broker's
// virtual host, and a clean slate of containers.
func (r *run) setup(ctx context.Context, suites []*suite.Suite) error {
	var err error
	if r.tmp, err = os.MkdirTemp("", "testsystem-run-"); err != nil {
		return err
	}
	if r.stack, err = stack.New(ctx, stack.Options{Root: r.opt.Root, RunID: r.id}, r.log); err != nil {
		return err
	}
	if err := r.stack.RemoveLeftovers(ctx); err != nil {
		return err
	}
	if err := r.stack.EnsureImages(ctx, []string{"ami-gateway"}, !r.opt.NoBuild); err != nil {
		return err
	}
	// Each connector on its own: one that does not build fails its CRM's suites, not the others'.
	r.buildErr = map[suite.CRM]error{}
	for _, crm := range suite.CRMs {
		for _, s := range suites {
			if s.CRM == crm {
				if err := r.stack.EnsureImages(ctx, []string{crm.Service()}, !r.opt.NoBuild); err != nil {
					r.buildErr[crm] = err
				}
				break
			}
		}
	}
	if r.redis, err = leaseRedisDB(ctx, r.opt.RedisAddr); err != nil {
		return err
	}
	if r.broker, err = openBrokerLock(); err != nil {
		return err
	}
	return ensureVhost(ctx, r.opt.AMQPURL, r.log)
}

func (r *run) teardown() {
	if r.stack != nil {
		if err := r.stack.Down(); err != nil {
			r.log.WithError(err).Error("removing the stack's containers")
		}
	}
	if r.redis != nil {
		r.redis.release()
	}
	if r.broker != nil {
		r.broker.close()
	}
	if r.tmp != "" {
		os.RemoveAll(r.tmp)
	}
}

// failSuite fails every call of a suite that could not run, saying why.
func (r *run) failSuite(s *suite.Suite, started time.Time, reason, detail string) junit.Suite {
	js := junit.Suite{Name: s.ID(), Timestamp: started, Time: time.Since(started), SystemOut: detail}
	for _, c := range s.Calls {
		js.Cases = append(js.Cases, junit.Case{Name: c.Name, ClassName: className(s), Failure: reason, Detail: detail})
		r.printf("FAIL  %-50s %6s  %s", s.ID()+"/"+c.Name, "-", reason)
	}
	r.printf("%s", indentLines(detail, "      "))
	return js
}

func className(s *suite.Suite) string { return "testsystem." + string(s.CRM) + "." + s.Name }

func (r *run) printf(format string, args ...any) {
	fmt.Fprintf(r.opt.Out, format+"\n", args...)
}

// suite runs one suite: fresh simulators and services, then each call.
func (r *run) suite(ctx context.Context, s *suite.Suite) junit.Suite {
	started := time.Now()
	log := r.log.WithField("suite", s.ID())
	release, err := r.broker.hold(ctx)
	if err != nil {
		return r.failSuite(s, started, "RabbitMQ was not free", err.Error())
	}
	if w := time.Since(started); w > 500*time.Millisecond {
		log.WithField("waited", w.Round(100*time.Millisecond).String()).Info("waited for a RabbitMQ restart by a Go test to finish")
	}
	defer release() // after the services are gone (the defer below runs first)
	env, err := r.startSuite(ctx, s, log)
	defer func() {
		// The services first: they must not retry against simulators that are gone.
		if env.started != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			if err := r.stack.Remove(cctx, *env.started, "ami-gateway", env.service); err != nil {
				log.WithError(err).Warn("removing the suite's services")
			}
			cancel()
		}
		env.close()
	}()
	if err != nil {
		return r.failSuite(s, started, "the suite's stack did not start", err.Error())
	}
	js := junit.Suite{Name: s.ID(), Timestamp: started}
	for i, c := range s.Calls {
		if ctx.Err() != nil {
			for _, rest := range s.Calls[i:] {
				js.Cases = append(js.Cases, junit.Case{Name: rest.Name, ClassName: className(s), Failure: "interrupted", Detail: "the run was interrupted before this call"})
				r.printf("FAIL  %-50s %6s  interrupted", s.ID()+"/"+rest.Name, "-")
			}
			break
		}
		js.Cases = append(js.Cases, r.call(ctx, s, c, env, log))
	}
	js.Time = time.Since(started)
	return js
}

// suiteEnv is what a suite's calls run against.
type suiteEnv struct {
	crm     crmSim
	ami     *amisim.Server
	watch   *watcher
	service string
	// started is set once the services were started with it.
	started *stack.Env
}

func (e *suiteEnv) close() {
	if e.watch != nil {
		e.watch.close()
	}
	if e.ami != nil {
		e.ami.Close()
	}
	if e.crm != nil {
		e.crm.Close()
	}
}

// startSuite resets the state the services keep, starts the simulators on the suite config's
// addresses, then (re)starts the services and waits until they say they are ready.
func (r *run) startSuite(ctx context.Context, s *suite.Suite, log logrus.FieldLogger) (*suiteEnv, error) {
	cfg := s.Config
	env := &suiteEnv{service: s.CRM.Service()}
	if err := r.redis.flush(ctx); err != nil {
		return env, err
	}
	if err := resetQueues(ctx, r.opt.AMQPURL, []string{s.CRM.Service() + ".calls"}); err != nil {
		return env, err
	}
	var err error
	if env.crm, err = startCRM(s); err != nil {
		return env, err
	}
	env.ami = amisim.New(amisim.Config{
		Users:  map[string]amisim.User{cfg.AMI.Username: {Secret: cfg.AMI.Secret.Reveal()}},
		Logger: log,
	})
	if err := env.ami.Listen(cfg.AMI.Address); err != nil {
		return env, fmt.Errorf("the simulated PBX cannot listen on %s (ami.address of %s): %w", cfg.AMI.Address, s.ConfigFile, err)
	}
	r.suites++
	queue := fmt.Sprintf("testsystem.run.%s.%d", r.id, r.suites)
	if env.watch, err = watchCalls(ctx, r.opt.AMQPURL, cfg.PBX, queue, log); err != nil {
		return env, err
	}
	envFile, err := r.writeEnv(s, env.crm.Env())
	if err != nil {
		return env, err
	}
	services := []string{"ami-gateway", env.service}
	if err := portsFree(s); err != nil {
		return env, err
	}
	log.WithField("services", strings.Join(services, " ")).Info("starting the services")
	senv := stack.Env{Config: s.ConfigFile, EnvFile: envFile}
	env.started = &senv
	if err := r.stack.Up(ctx, senv, services...); err != nil {
		return env, err
	}
	// The connector is alive before the CRM installs it; it is ready only after.
	connHealth := "http://" + cfg.HTTP[env.service].Listen + "/healthz"
	if err := r.stack.WaitReady(ctx, env.service, connHealth, r.opt.ReadyTimeout); err != nil {
		return env, err
	}
	if err := env.crm.Install(ctx, s); err != nil {
		return env, fmt.Errorf("%w\n%s", err, r.stack.Logs(context.WithoutCancel(ctx), env.service, 15))
	}
	for _, svc := range services {
		ready := "http://" + cfg.HTTP[svc].Listen + "/readyz"
		if err := r.stack.WaitReady(ctx, svc, ready, r.opt.ReadyTimeout); err != nil {
			return env, err
		}
	}
	// Ready means the gateway has logged in; the session must also exist here before a call plays.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := env.ami.WaitSessions(wctx, 1); err != nil {
		return env, fmt.Errorf("ami-gateway is ready but no AMI session is open on %s: %w", cfg.AMI.Address, err)
	}
	return env, nil
}

// portsFree checks that the addresses the services will listen on are free: a service of
// another run, or one started by hand, would otherwise answer in their place.
func portsFree(s *suite.Suite) error {
	cfg := s.Config
	addrs := map[string]string{
		"http.ami-gateway.listen":             cfg.HTTP["ami-gateway"].Listen,
		"http." + s.CRM.Service() + ".listen": cfg.HTTP[s.CRM.Service()].Listen,
	}
	switch s.CRM {
	case suite.Amo:
		addrs["amo.listen"] = cfg.Amo.Listen
	case suite.Bitrix:
		addrs["bitrix.listen"] = cfg.Bitrix.Listen
	}
	var busy []string
	for key, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			busy = append(busy, fmt.Sprintf("%s (%s)", addr, key))
			continue
		}
		ln.Close()
	}
	if len(busy) > 0 {
		sort.Strings(busy)
		return fmt.Errorf("%s: in use by another process (another run, or a service started by hand): stop it, or give this suite other ports in %s", strings.Join(busy, ", "), s.ConfigFile)
	}
	return nil
}

// writeEnv writes the services' RINGBRIDGE_* overrides: the broker's test vhost, the leased
// Redis database, and what the CRM simulator hands out (an authorization code). Mode 0644: the
// services run as nobody and docker-compose reads it as the caller; it lives in the run's
// private temporary folder and holds nothing but test values.
func (r *run) writeEnv(s *suite.Suite, extra map[string]string) (string, error) {
	vars := map[string]string{
		"RINGBRIDGE_RABBITMQ_URL":  r.opt.AMQPURL,
		"RINGBRIDGE_REDIS_ADDRESS": r.opt.RedisAddr,
		"RINGBRIDGE_REDIS_DB":      strconv.Itoa(r.redis.num),
	}
	for k, v := range extra {
		vars[k] = v
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, vars[k])
	}
	file := filepath.Join(r.tmp, strings.ReplaceAll(s.ID(), "/", "-")+".env")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("writing the services' environment: %w", err)
	}
	return file, nil
}

// call plays one test call and compares what the CRM received.
func (r *run) call(ctx context.Context, s *suite.Suite, c *suite.Call, env *suiteEnv, log logrus.FieldLogger) junit.Case {
	started := time.Now()
	name := s.ID() + "/" + c.Name
	jc := junit.Case{Name: c.Name, ClassName: className(s)}
	fail := func(reason, detail string) junit.Case {
		jc.Time, jc.Failure, jc.Detail = time.Since(started), reason, detail
		r.printf("FAIL  %-50s %5.1fs  %s", name, jc.Time.Seconds(), reason)
		if detail != "" {
			r.printf("%s", indentLines(detail, "      "))
		}
		return jc
	}
	since := lastSeq(env.crm)
	// The call's own times (CEL and Cdr, which ami-gateway's clock follows) run at real speed
	// while the call plays faster, so the PBX's time runs ahead of the wall clock. ami-gateway's
	// clock never goes back: a call generated at "now" after a sped-up one would be dated before
	// the clock and get collapsed durations. So each call starts where the previous one ended, in
	// the PBX's time.
	at := time.Now()
	if r.streamAt.After(at) {
		at = r.streamAt
	}
	rec, err := r.gen.Generate(c.Scenario, at)
	if err != nil {
		return fail("the scenario cannot be generated", fmt.Sprintf("%s: %v", c.File, err))
	}
	r.streamAt = at.Add(rec.Duration() + time.Second)
	callID := firstLinkedid(rec)
	log = log.WithFields(logrus.Fields{"call": c.Name, "call_id": callID})
	log.Debug("playing")
	if err := env.ami.Play(ctx, rec, r.opt.Speed); err != nil {
		return fail("the simulated PBX could not play the call", err.Error())
	}
	ectx, cancel := context.WithTimeout(ctx, endedTimeout)
	ev, err := env.watch.waitEnded(ectx, callID)
	cancel()
	if err != nil {
		return fail(fmt.Sprintf("ami-gateway published no end of call %s within %s", callID, endedTimeout),
			fmt.Sprintf("%v\n%s", err, r.stack.Logs(context.WithoutCancel(ctx), "ami-gateway", 15)))
	}
	settle := r.opt.Settle
	if c.Settle > 0 {
		settle = c.Settle
	}
	quiet := waitQuiet(ctx, env.crm, settle, maxSettle)
	reqs := env.crm.Requests(since)
	vars := map[string]string{
		"call_id":    ev.CallID,
		"pbx":        ev.PBX,
		"started_at": strconv.FormatInt(ev.StartedAt.Unix(), 10),
		"recording":  ev.Recording,
		// Filled so that an expectation using it without a register in the call says so.
		"crm_call_id": "(no CALL_ID: no register in this call answered one)",
	}
	if id := env.crm.CallID(reqs); id != "" {
		vars["crm_call_id"] = id
	}
	res := expect.Compare(c.Expect, reqs, expect.Options{Vars: vars, Ignore: env.crm.Ignore(), Batched: env.crm.Batched()})
	jc.Time = time.Since(started)
	jc.SystemOut = fmt.Sprintf("call %s: %s; %d requests compared, %d ignored\n%s", ev.CallID, describeEvent(ev), len(res.Compared), res.Ignored, res.Report())
	if !res.OK() {
		detail := strings.TrimRight(res.Report(), "\n")
		if !quiet {
			detail += fmt.Sprintf("\n  (the CRM was still receiving requests after %s)", maxSettle)
		}
		if logs := r.stack.Logs(context.WithoutCancel(ctx), env.service, 8); logs != "" {
			detail += "\n  last lines of " + env.service + ":\n" + logs
		}
		return fail(summarize(res), detail)
	}
	r.printf("PASS  %-50s %5.1fs  %d requests as expected", name, jc.Time.Seconds(), len(res.Compared))
	return jc
}

// summarize is a failure's one line: the kinds of problem and how many.
func summarize(res *expect.Result) string {
	counts := map[expect.ProblemKind]int{}
	var order []expect.ProblemKind
	for _, p := range res.Problems {
		if counts[p.Kind] == 0 {
			order = append(order, p.Kind)
		}
		counts[p.Kind]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return strings.Join(parts, ", ")
}

// describeEvent says in a few words what ami-gateway made of the call.
func describeEvent(ev *callevent.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", ev.Direction, ev.Disposition)
	if ev.External != "" {
		fmt.Fprintf(&b, ", external %s", ev.External)
	}
	if ev.AnsweredBy != "" {
		fmt.Fprintf(&b, ", answered by %s", ev.AnsweredBy)
	}
	fmt.Fprintf(&b, ", rang %s, talk %ds", strings.Join(ev.ExtensionsRang, ","), ev.TalkSeconds)
	for _, t := range ev.Transfers {
		fmt.Fprintf(&b, ", %s transfer %s->%s", t.Kind, t.From, t.To)
	}
	if ev.Recording != "" {
		fmt.Fprintf(&b, ", recording %s", ev.Recording)
	}
	return b.String()
}

// lastSeq is the sequence number of the journal's last entry.
func lastSeq(c crmSim) int {
	reqs := c.Requests(0)
	if len(reqs) == 0 {
		return 0
	}
	return reqs[len(reqs)-1].Seq
}

// waitQuiet waits until the CRM has received nothing for settle, at most max; false when it
// was still busy at max.
func waitQuiet(ctx context.Context, c crmSim, settle, max time.Duration) bool {
	deadline := time.Now().Add(max)
	last, quietSince := lastSeq(c), time.Now()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
		if n := lastSeq(c); n != last {
			last, quietSince = n, time.Now()
		}
		if time.Since(quietSince) >= settle {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// firstLinkedid is the call's id as ami-gateway reports it: the Linkedid of its first channel.
func firstLinkedid(rec *amisim.Recording) string {
	for _, m := range rec.Messages() {
		if v := m.Get("Linkedid"); v != "" {
			return v
		}
	}
	return ""
}

// lockPorts makes runs that would use the same ports take turns on this machine (CI, people and
// fresh clones share it; ports are the machine's, whatever the checkout). One flock per port in
// TMPDIR, taken in order so two runs never hold each other's; a killed run frees them.
func lockPorts(ctx context.Context, suites []*suite.Suite, log logrus.FieldLogger) (func(), error) {
	set := map[string]bool{}
	for _, s := range suites {
		for _, addr := range s.Addresses() {
			if _, port, err := net.SplitHostPort(addr); err == nil {
				set[port] = true
			}
		}
	}
	ports := make([]string, 0, len(set))
	for p := range set {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	var held []*os.File
	unlock := func() {
		for _, f := range held {
			f.Close()
		}
	}
	for _, port := range ports {
		path := filepath.Join(os.TempDir(), "ringbridge-testsystem-port-"+port+".lock")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("port lock: %w", err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			holder, _ := os.ReadFile(path)
			log.WithField("port", port).WithField("holder", strings.TrimSpace(string(holder))).Info("another testsystem run uses this port; waiting for it to end")
			if err := flockWait(ctx, f, syscall.LOCK_EX); err != nil {
				f.Close()
				unlock()
				return nil, err
			}
		}
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d since %s\n", os.Getpid(), time.Now().Format(time.RFC3339))), 0)
		held = append(held, f)
	}
	return unlock, nil
}

// relative shortens a path under the working directory, for the file names in messages.
func relative(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

func indentLines(s, prefix string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
