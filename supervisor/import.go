package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/supervisor/bundle"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/update"
)

// runImport installs from an offline bundle: the index is checked with the release key, every
// image of the chain is checked against the signatures in the bundle before it is loaded into
// the Engine, and the chain is then walked like any update (backup, migration, gated swap,
// rollback), its containers created by the loaded images' IDs.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	to := fs.String("to", "", "target version (default: the newest of the bundle on the channel)")
	verbose := fs.Bool("v", false, "log every step, not only warnings")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: supervisor import [--to VERSION] [--config FILE] BUNDLE")
		return 2
	}
	sv, ok := operatorSupervisor(ctx, fs, *path, stdout, stderr, *verbose)
	if !ok {
		return 1
	}
	if err := importBundle(ctx, sv, fs.Arg(0), *to, stdout); err != nil {
		fmt.Fprintf(stderr, "supervisor import: %v\n", err)
		return 1
	}
	return 0
}

func importBundle(ctx context.Context, sv *supervisor, file, to string, stdout io.Writer) error {
	if j, err := sv.updater.Recover(ctx); err != nil {
		return fmt.Errorf("finishing the interrupted update: %w", err)
	} else if j != nil {
		fmt.Fprintf(stdout, "finished the interrupted update %s first\n", j.ID)
	}
	b, err := bundle.Open(ctx, file, sv.verifier)
	if err != nil {
		return err
	}
	defer b.Close()
	st, err := sv.updater.Installed()
	if err != nil {
		return err
	}
	var target release.Version
	if to == "" {
		latest := b.Index.Latest(sv.channel)
		if latest == nil {
			return fmt.Errorf("the bundle has no release on channel %s", sv.channel)
		}
		target = latest.Version
	} else if target, err = release.ParseVersion(to); err != nil {
		return err
	}
	chain, err := b.Index.Plan(sv.channel, st.Version, target)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, chain)
	if chain.Target() == nil {
		return nil
	}
	// Every image of the chain is checked before any is loaded: a refused bundle leaves nothing in
	// the Engine. The update checks them again.
	bv := b.Verifier(sv.verifier)
	type load struct {
		version, service string
		ref              name.Digest
	}
	var loads []load
	for _, step := range chain.Steps {
		for _, svc := range sv.ucfg.Services {
			raw, ok := step.Release.Images[svc.Name]
			if !ok {
				continue // the update refuses the release with the reason
			}
			ref, err := name.NewDigest(raw)
			if err != nil {
				return err
			}
			if _, err := bv.VerifyImage(ctx, ref); err != nil {
				return fmt.Errorf("%s %s: %w", step.Release.Version, svc.Name, err)
			}
			loads = append(loads, load{step.Release.Version.String(), svc.Name, ref})
		}
	}
	for _, l := range loads {
		img, err := b.Image(l.ref)
		if err != nil {
			return fmt.Errorf("%s %s: %w", l.version, l.service, err)
		}
		tag := l.ref.Repository.Tag("import-" + strings.TrimPrefix(l.ref.DigestStr(), "sha256:")[:12])
		id, err := sv.engine.LoadImage(ctx, img, tag)
		if err != nil {
			return err
		}
		if err := update.RecordLocalImage(sv.ucfg.DataDir, l.ref.String(), id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "loaded %s %s as %s\n", l.version, l.service, id[:19])
	}
	u, err := update.New(sv.ucfg, sv.engine, bv, nil, sv.events, sv.log)
	if err != nil {
		return err
	}
	start := time.Now()
	if _, err := u.Walk(ctx, chain); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s installed from %s in %s\n", chain.Target().Version, file, time.Since(start).Round(time.Millisecond))
	return nil
}
