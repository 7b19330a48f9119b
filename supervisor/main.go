// Command supervisor owns ringbridge's service containers on a server: it installs signed releases,
// updates them with a health gate and rolls back, backs up, and answers admin over RabbitMQ. See
// README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringbridge/ringbridge/internal/health"
)

// version is stamped at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

// defaultListen is where /healthz, /readyz and /metrics are served unless http.supervisor.listen
// says otherwise.
const defaultListen = ":9105"

const usage = `usage: supervisor COMMAND [flags]

commands:
  run [--config FILE]
                  the service: finishes an interrupted update, then answers admin on the queue
                  supervisor.rpc (status, check, plan, update) with progress on supervisor.events
  update [--to VERSION] [--config FILE] [-v]
                  update now from this terminal (the chain to VERSION, the newest by default)
  status [--config FILE]
                  what is installed and how each service container is
  bugreport [--out FILE] [--lines N] [--config FILE]
                  one archive for support: containers' inspect data and logs, versions, journal,
                  the config; every secret replaced by <secret>
  backup [--list] [--config FILE]
                  take a backup of the config and the services' volumes now (or list them)
  restore [--config FILE] BACKUP-ID
                  put a backup of the installed version back and restart the services on it
  import [--to VERSION] [--config FILE] [-v] BUNDLE
                  install from an offline bundle (signed index + images and signatures as an OCI layout)
  plan --to VERSION [--installed VERSION] [--index LOCATION] [--channel C] [--key FILE] [--config FILE]
                  print the chain of releases an update to VERSION walks, and why it stops at each
  keygen --out PREFIX
                  write a release key pair: PREFIX.pub (cosign.pub format) and PREFIX.key (cosign's
                  encrypted format with the password in $COSIGN_PASSWORD, else unencrypted PKCS#8)
  sign-index --key FILE INDEX
                  sign a release index: writes INDEX.sig (the signature "cosign sign-blob" makes)
  sign-image --key FILE REPO@sha256:DIGEST
                  sign an image in its registry the way "cosign sign --key" does
  verify-image --key FILE REPO@sha256:DIGEST
                  check an image's signature as an update does
  healthcheck [--ready] [--config FILE]
                  exit 0 when the running supervisor answers /healthz (or /readyz)
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
	case "update":
		return runUpdate(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], stdout, stderr)
	case "backup":
		return runBackup(ctx, args[1:], stdout, stderr)
	case "restore":
		return runRestore(ctx, args[1:], stdout, stderr)
	case "bugreport":
		return runBugreport(ctx, args[1:], stdout, stderr)
	case "plan":
		return runPlan(ctx, args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	case "sign-index":
		return runSignIndex(args[1:], stdout, stderr)
	case "sign-image":
		return runSignImage(ctx, args[1:], stdout, stderr)
	case "verify-image":
		return runVerifyImage(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return health.RunCheck("supervisor", defaultListen, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "supervisor: unknown command %q\n%s", args[0], usage)
	return 2
}
