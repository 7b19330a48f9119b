package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/logging"
	"github.com/ringbridge/ringbridge/supervisor/bugreport"
)

func runBugreport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bugreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	out := fs.String("out", "", "archive to write (default ringbridge-bugreport-<time>.tar.gz)")
	lines := fs.Int("lines", 2000, "log lines per container")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sv, ok := operatorSupervisor(ctx, fs, *path, stdout, stderr, false)
	if !ok {
		return 1
	}
	if *out == "" {
		*out = "ringbridge-bugreport-" + time.Now().UTC().Format("20060102T150405Z") + ".tar.gz"
	}
	if err := writeBugreport(ctx, sv, *out, *lines); err != nil {
		fmt.Fprintf(stderr, "supervisor bugreport: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return 0
}

func writeBugreport(ctx context.Context, sv *supervisor, out string, lines int) error {
	dump, err := sv.cfg.Dump()
	if err != nil {
		return err
	}
	st, _ := sv.updater.Installed()
	in := bugreport.Input{
		Versions: map[string]string{"supervisor": version, "installed": st.Version.String(), "install": sv.cfg.Supervisor.Install,
			"channel": sv.cfg.Supervisor.Channel},
		Config:   dump,
		DataDir:  sv.cfg.Supervisor.DataDir,
		LogLines: lines,
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".bugreport-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := bugreport.Write(ctx, tmp, sv.engine, logging.NewRedactor(sv.cfg.Secrets()...), in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
