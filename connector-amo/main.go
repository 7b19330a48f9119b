// Command connector-amo puts every call of the PBX into amoCRM (Kommo), and turns clicks on
// numbers in amoCRM into calls. See README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/health"
)

// version is stamped at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

const usage = `usage: connector-amo COMMAND [flags]

commands:
  run [--config FILE]
                  consume the call events and log them in amoCRM; serve the install redirect,
                  click-to-call and recording links (the service)
  migrate-config [--in-place] [--dry-run] FILE
                  bring a config file to this build's schema
  healthcheck [--ready] [--config FILE]
                  exit 0 when the running service answers /healthz (or /readyz): the image's HEALTHCHECK
  version         print the version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "run":
		return runService(ctx, args[1:], stderr)
	case "migrate-config":
		return config.RunMigrateCLI(args[1:], stdout, stderr)
	case "healthcheck":
		return health.RunCheck(serviceName, defaultListen, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "connector-amo: unknown command %q\n%s", args[0], usage)
	return 2
}

// lookupEnv is os.Getenv: the config's RINGBRIDGE_* overrides.
func lookupEnv(name string) string { return os.Getenv(name) }
