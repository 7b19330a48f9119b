package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/testsystem/runner"
	"github.com/ringbridge/ringbridge/testsystem/suite"
)

const runUsage = `usage: testsystem run [--suite NAME] [--crm amo|bx] [--junit FILE] [--no-build] [flags]

Builds the service images, then for each suite under testsystem/suites/<crm>/<suite>/ starts the
simulated PBX and CRM in this process and ami-gateway and the suite's connector on the local
Docker Engine (compose/test-stack.yml), plays the suite's test calls one by one, and compares the
CRM requests each caused with its expectations. Prints one line per call and ends with the line
"N passed, N failed"; exits 1 when a call failed, 2 when the suites' files are wrong.
RabbitMQ and Redis must run on this machine (bash .ci/run services).

flags:
`

// runFlags are the run subcommand's settings.
type runFlags struct {
	opt     runner.Options
	verbose bool
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, runUsage)
		fs.PrintDefaults()
	}
	var suites stringList
	var crm, root string
	fs.Var(&suites, "suite", "run only this suite (its folder name, or crm/name); repeatable")
	fs.StringVar(&crm, "crm", "", "run only this CRM's suites: amo or bx")
	fs.StringVar(&f.opt.JUnit, "junit", "", "write the results as JUnit XML to this file")
	fs.BoolVar(&f.opt.NoBuild, "no-build", false, "use the images built before (only missing ones are built)")
	fs.StringVar(&root, "root", "", "the repository's root (default: found from the working directory)")
	fs.Float64Var(&f.opt.Speed, "speed", runner.DefaultSpeed, "play calls this many times faster than real time")
	fs.DurationVar(&f.opt.Settle, "settle", runner.DefaultSettle, "how long the CRM must receive nothing before a call is compared")
	fs.StringVar(&f.opt.AMQPURL, "amqp", envOr("RINGBRIDGE_TEST_AMQP_URL", runner.DefaultAMQPURL), "the RabbitMQ URL the services use (its vhost is created if missing)")
	fs.StringVar(&f.opt.RedisAddr, "redis", envOr("RINGBRIDGE_REDIS_ADDR", "127.0.0.1:6379"), "the Redis the services use (a database is leased for the run)")
	fs.DurationVar(&f.opt.ReadyTimeout, "ready-timeout", runner.DefaultReadyTimeout, "how long the services may take to become ready")
	fs.BoolVar(&f.verbose, "v", false, "log what the runner does (and the simulated PBX's log)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: name a suite with --suite", fs.Arg(0))
	}
	if crm != "" {
		c, err := suite.ParseCRM(crm)
		if err != nil {
			return nil, fmt.Errorf("--crm: %w", err)
		}
		f.opt.CRM = c
	}
	for _, s := range suites {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				f.opt.Suites = append(f.opt.Suites, n)
			}
		}
	}
	if f.opt.Speed <= 0 {
		return nil, fmt.Errorf("--speed %g: write a factor above 0, e.g. 10", f.opt.Speed)
	}
	if root == "" {
		var err error
		if root, err = findRoot(); err != nil {
			return nil, err
		}
	}
	f.opt.Root = root
	return f, nil
}

// findRoot walks up from the working directory to the folder holding compose/test-stack.yml.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "compose", "test-stack.yml")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no compose/test-stack.yml in %s or above: run from the repository, or give --root", dir)
		}
	}
}

// runRun is `testsystem run`.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, err := parseRunFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "testsystem run: %v\n", err)
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetFormatter(&logrus.TextFormatter{DisableQuote: true, FullTimestamp: true, TimestampFormat: "15:04:05"})
	log.SetLevel(logrus.InfoLevel)
	if f.verbose {
		log.SetLevel(logrus.DebugLevel)
	}
	f.opt.Log = log
	f.opt.Out = stdout
	start := time.Now()
	sum, err := runner.Run(ctx, f.opt)
	var lerr *runner.LoadError
	if errors.As(err, &lerr) {
		fmt.Fprintf(stderr, "testsystem run: the suites have mistakes; nothing was started:\n%v\n", lerr.Err)
		return 2
	}
	if sum == nil {
		fmt.Fprintf(stderr, "testsystem run: %v\n", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "testsystem run: %v\n", err)
	}
	log.WithField("took", time.Since(start).Round(100*time.Millisecond).String()).Info("run finished")
	fmt.Fprintln(stdout, sum.Line())
	if err != nil || sum.Failed > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}
