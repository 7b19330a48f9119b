package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/supervisor/update"
)

// The operator's commands on the host: the same work as the RPC verbs, run in this process and
// printed to the terminal. The data dir's lock keeps them from running beside an update of the
// supervisor service.

func operatorSupervisor(ctx context.Context, fs *flag.FlagSet, path string, stdout, stderr io.Writer, verbose bool) (*supervisor, bool) {
	cfg, err := loadFull(config.Path(path))
	if err != nil {
		fmt.Fprintf(stderr, "supervisor %s: %v\n", fs.Name(), err)
		return nil, false
	}
	lcfg := cfg.Log
	lcfg.Format = "text"
	if !verbose {
		lcfg.Level = "warn"
	}
	log := logging.New("supervisor", lcfg, stderr, logging.WithRedactor(logging.NewRedactor(cfg.Secrets()...)))
	var mu sync.Mutex // pulls report from several goroutines at once
	events := update.EventsFunc(func(e update.Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.Pull != nil && !e.Pull.Finished {
			return // one line per layer change would flood a terminal; the finished line is kept
		}
		svc := ""
		if e.Service != "" {
			svc = " " + e.Service
		}
		fmt.Fprintf(stdout, "%s %-8s%s: %s\n", e.Time.Format("15:04:05"), e.Stage, svc, e.Message)
	})
	sv, err := newSupervisor(ctx, cfg, config.Path(path), events, log)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor %s: %v\n", fs.Name(), err)
		return nil, false
	}
	return sv, true
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sv, ok := operatorSupervisor(ctx, fs, *path, stdout, stderr, false)
	if !ok {
		return 1
	}
	st, err := sv.Status(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor status: %v\n", err)
		return 1
	}
	installed := st.Installed
	if installed == "" {
		installed = "nothing"
	}
	fmt.Fprintf(stdout, "installed: %s (channel %s)\n", installed, st.Channel)
	if j, _ := update.LoadJournal(sv.cfg.Supervisor.DataDir); j != nil {
		fmt.Fprintf(stdout, "unfinished update %s to %s (phase %s): the supervisor finishes it when it starts\n", j.ID, j.To.Version, j.Phase)
	}
	for _, c := range st.Services {
		fmt.Fprintf(stdout, "  %-14s %-10s %-8s %s\n", c.Service, c.Version, c.State, c.Health)
	}
	return 0
}

func runUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	to := fs.String("to", "", "target version (default: the newest on the channel)")
	verbose := fs.Bool("v", false, "log every step, not only warnings")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sv, ok := operatorSupervisor(ctx, fs, *path, stdout, stderr, *verbose)
	if !ok {
		return 1
	}
	if j, err := sv.updater.Recover(ctx); err != nil {
		fmt.Fprintf(stderr, "supervisor update: finishing the interrupted update: %v\n", err)
		return 1
	} else if j != nil {
		fmt.Fprintf(stdout, "finished the interrupted update %s first\n", j.ID)
	}
	chain, err := sv.chain(ctx, *to)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor update: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, chain)
	if chain.Target() == nil {
		return 0
	}
	start := time.Now()
	reps, err := sv.updater.Walk(ctx, chain)
	for _, r := range reps {
		for _, s := range r.Services {
			fmt.Fprintf(stdout, "  %s %s: healthy after %s, unavailable %s\n", r.To, s.Service,
				s.Healthy.Round(time.Millisecond), s.Unavailable.Round(time.Millisecond))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "supervisor update: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s installed in %s\n", chain.Target().Version, time.Since(start).Round(time.Millisecond))
	return 0
}

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	list := fs.Bool("list", false, "list the backups instead of taking one")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sv, ok := operatorSupervisor(ctx, fs, *path, stdout, stderr, false)
	if !ok {
		return 1
	}
	if *list {
		bs, err := sv.updater.Backups()
		if err != nil {
			fmt.Fprintf(stderr, "supervisor backup: %v\n", err)
			return 1
		}
		for _, b := range bs {
			fmt.Fprintf(stdout, "%s  %s  version %-10s config %-5v volumes %v  %s\n", b.ID, b.Created.Format(time.RFC3339), b.Version, b.Config, b.Volumes, b.Reason)
		}
		return 0
	}
	m, err := sv.updater.Backup(ctx, "asked by an operator")
	if err != nil {
		fmt.Fprintf(stderr, "supervisor backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "backup %s: config %v, volumes %v\n", m.ID, m.Config, m.Volumes)
	return 0
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: supervisor restore [--config FILE] BACKUP-ID   (supervisor backup --list shows them)")
		return 2
	}
	sv, ok := operatorSupervisor(ctx, fs, *path, stdout, stderr, false)
	if !ok {
		return 1
	}
	rep, err := sv.updater.Restore(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "supervisor restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "backup %s restored in %s\n", fs.Arg(0), rep.Took.Round(time.Millisecond))
	return 0
}
