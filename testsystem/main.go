// Command testsystem is ringbridge's black-box test system (issue 3): simulated PBX in,
// simulated CRMs out. Each part is a subcommand; see README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// commands is the help text: one line per subcommand that exists. Add a subcommand in a file of
// its own, a line here and a case in run.
const commands = `usage: testsystem COMMAND [flags]

commands:
  amisim    serve AMI like an Asterisk PBX and play recorded or generated calls
  run       run the suites: the services in Docker, simulated PBX and CRMs, every CRM request checked
  watch     print the call events a PBX's gateway publishes, as they come
  help      print this help (testsystem COMMAND -h: a command's flags)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, commands)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "amisim":
		return runAMISim(ctx, args[1:], stdout, stderr)
	case "run":
		return runRun(ctx, args[1:], stdout, stderr)
	case "watch":
		return runWatch(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, commands)
		return 0
	default:
		fmt.Fprintf(stderr, "testsystem: unknown command %q\n\n%s", args[0], commands)
		return 2
	}
}
