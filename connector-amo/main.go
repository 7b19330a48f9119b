// Command connector-amo puts every call of the PBX into amoCRM (Kommo), and turns clicks on
// numbers in amoCRM into calls. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
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
		return runHealthcheck(args[1:], stdout, stderr)
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

// configPath is the config file: --config, else $RINGBRIDGE_CONFIG, else the container's path.
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("RINGBRIDGE_CONFIG"); p != "" {
		return p
	}
	return "/etc/ringbridge/config.yaml"
}

// runHealthcheck asks the running service for /healthz (or /readyz): the image's HEALTHCHECK,
// since an image FROM scratch has no curl.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or /etc/ringbridge/config.yaml)")
	ready := fs.Bool("ready", false, "check /readyz (the service does its work) instead of /healthz (the process is alive)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	listen := defaultListen
	if raw, err := os.ReadFile(configPath(*path)); err == nil {
		if cfg, err := config.Decode(raw, os.Getenv); err == nil {
			if h, ok := cfg.HTTP[serviceName]; ok && h.Listen != "" {
				listen = h.Listen
			}
		}
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: listen address %q: %v\n", listen, err)
		return 1
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	endpoint := "/healthz"
	if *ready {
		endpoint = "/readyz"
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(host, port) + endpoint)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "healthcheck: %s %s\n", resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}

// lookupEnv is os.Getenv: the config's RINGBRIDGE_* overrides.
func lookupEnv(name string) string { return os.Getenv(name) }
