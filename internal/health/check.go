package health

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
)

// RunCheck is every service's `healthcheck [--ready] [--config FILE]` subcommand: it asks the
// running service for /healthz (or /readyz) and exits 0 when it answers 200. It is the images'
// HEALTHCHECK, since an image FROM scratch has no curl. The address is the config's
// http.<service>.listen, else defaultListen.
func RunCheck(service, defaultListen string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	ready := fs.Bool("ready", false, "check /readyz (the service does its work) instead of /healthz (the process is alive)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	listen := defaultListen
	if raw, err := os.ReadFile(config.Path(*path)); err == nil {
		if cfg, err := config.Decode(raw, os.Getenv); err == nil {
			if h, ok := cfg.HTTP[service]; ok && h.Listen != "" {
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
