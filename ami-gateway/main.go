// Command ami-gateway follows an Asterisk PBX over the Manager Interface and publishes its calls
// as call events on RabbitMQ. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringbridge/ringbridge/ami-gateway/replay"
	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/health"
)

// version is stamped at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

const usage = `usage: ami-gateway COMMAND [flags]

commands:
  run             follow the PBX and publish call events (the service)
  replay [--config FILE] FILE.ami
                  print the call events a recorded AMI stream makes, one JSON line each
  record --out FILE [--config FILE] [--for DURATION]
                  save the raw AMI stream of the configured PBX, for a bug report
  migrate-config [--in-place] [--dry-run] FILE
                  bring a config file to this build's schema
  healthcheck [--ready] [--config FILE]
                  exit 0 when the running service answers /healthz (or /readyz): the image's HEALTHCHECK
  version         print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "run":
		return runService(ctx, args[1:], stderr)
	case "replay":
		return runReplay(args[1:], stdin, stdout, stderr)
	case "record":
		return runRecord(ctx, args[1:], stdout, stderr)
	case "migrate-config":
		return config.RunMigrateCLI(args[1:], stdout, stderr)
	case "healthcheck":
		return health.RunCheck("ami-gateway", defaultListen, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "ami-gateway: unknown command %q\n%s", args[0], usage)
	return 2
}

func runReplay(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file whose pbx and classify sections to use (default: the built-in classification)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: ami-gateway replay [--config FILE] FILE.ami  (FILE - reads standard input)")
		return 2
	}
	cfg := config.Defaults()
	if *cfgPath != "" {
		raw, err := os.ReadFile(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "ami-gateway replay: %v\n", err)
			return 1
		}
		if cfg, err = config.Decode(raw, nil); err != nil {
			fmt.Fprintf(stderr, "ami-gateway replay: config %s: %v\n", *cfgPath, err)
			return 1
		}
		if err := cfg.Classify.Validate(); err != nil {
			fmt.Fprintf(stderr, "ami-gateway replay: config %s: %v\n", *cfgPath, err)
			return 1
		}
	}
	if cfg.PBX == "" {
		cfg.PBX = "pbx1"
	}
	in := stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "ami-gateway replay: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	st, err := replay.Run(in, stdout, replay.Options{PBX: cfg.PBX, Classify: cfg.Classify, Errors: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "ami-gateway replay: %v\n", err)
		return 1
	}
	if st.Open > 0 {
		fmt.Fprintf(stderr, "ami-gateway replay: %d calls were still in progress when the recording ended\n", st.Open)
	}
	if st.ParseErrors > 0 {
		fmt.Fprintf(stderr, "ami-gateway replay: %d bad packets skipped\n", st.ParseErrors)
	}
	return 0
}
