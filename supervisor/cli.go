package main

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

// loadSection reads the supervisor section of the install's config. A missing file gives the
// defaults: an operator on the host may plan before anything is configured. Only this section is
// validated: the supervisor must run (and install) while the services' sections are incomplete.
func loadSection(path string) (config.Supervisor, error) {
	raw, err := os.ReadFile(config.Path(path))
	if errors.Is(err, os.ErrNotExist) && path == "" {
		return config.DefaultSupervisor(), nil
	}
	if err != nil {
		return config.Supervisor{}, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := config.Decode(raw, os.Getenv)
	if err != nil {
		return config.Supervisor{}, fmt.Errorf("config %s: %w", config.Path(path), err)
	}
	if err := cfg.Supervisor.Validate(); err != nil {
		return config.Supervisor{}, fmt.Errorf("config %s: %w", config.Path(path), err)
	}
	return cfg.Supervisor, nil
}

func readPublicKey(path string) (*ecdsa.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("release public key: %w", err)
	}
	k, err := sign.ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func readPrivateKey(path string) (*ecdsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// The password is read from the environment as cosign does, never from a flag (it would show
	// in ps and in shell history).
	k, err := sign.ParsePrivateKey(raw, []byte(os.Getenv("COSIGN_PASSWORD")))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// installedVersion is the version recorded in the data dir's state file, zero when none is.
func installedVersion(dataDir string) (release.Version, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return release.Version{}, nil
	}
	if err != nil {
		return release.Version{}, err
	}
	var st struct {
		Version release.Version `json:"version"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return release.Version{}, fmt.Errorf("%s: %w", filepath.Join(dataDir, "state.json"), err)
	}
	return st.Version, nil
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default $RINGBRIDGE_CONFIG or "+config.DefaultPath+")")
	to := fs.String("to", "", "target version (default: the newest on the channel)")
	installedFlag := fs.String("installed", "", "installed version (default: the supervisor's state)")
	index := fs.String("index", "", "release index: https URL, file (with FILE.sig) or offline bundle (default supervisor.index)")
	channel := fs.String("channel", "", "channel (default supervisor.channel)")
	key := fs.String("key", "", "release public key (default supervisor.public_key)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	sec, err := loadSection(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor plan: %v\n", err)
		return 1
	}
	if *index == "" {
		*index = sec.Index
	}
	if *channel == "" {
		*channel = sec.Channel
	}
	if *key == "" {
		*key = sec.PublicKey
	}
	ch := release.Channel(*channel)
	if !ch.Valid() {
		fmt.Fprintf(stderr, "supervisor plan: channel %q: write stable, beta or dev\n", *channel)
		return 2
	}
	if *index == "" {
		fmt.Fprintln(stderr, "supervisor plan: no release index: pass --index or set supervisor.index")
		return 2
	}
	pub, err := readPublicKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor plan: %v\n", err)
		return 1
	}
	v, err := sign.NewVerifier([]*ecdsa.PublicKey{pub})
	if err != nil {
		fmt.Fprintf(stderr, "supervisor plan: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ix, err := release.NewLoader(v, nil).Load(ctx, *index)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor plan: %v\n", err)
		return 1
	}
	var installed release.Version
	if *installedFlag != "" {
		if installed, err = release.ParseVersion(*installedFlag); err != nil {
			fmt.Fprintf(stderr, "supervisor plan: --installed: %v\n", err)
			return 2
		}
	} else if installed, err = installedVersion(sec.DataDir); err != nil {
		fmt.Fprintf(stderr, "supervisor plan: installed version: %v\n", err)
		return 1
	}
	var target release.Version
	if *to == "" {
		latest := ix.Latest(ch)
		if latest == nil {
			fmt.Fprintf(stderr, "supervisor plan: channel %s has no release\n", ch)
			return 1
		}
		target = latest.Version
	} else if target, err = release.ParseVersion(*to); err != nil {
		fmt.Fprintf(stderr, "supervisor plan: --to: %v\n", err)
		return 2
	}
	chain, err := ix.Plan(ch, installed, target)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor plan: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, chain)
	return 0
}

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "release", "file name prefix: writes PREFIX.key and PREFIX.pub")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	k, err := sign.GenerateKey()
	if err != nil {
		fmt.Fprintf(stderr, "supervisor keygen: %v\n", err)
		return 1
	}
	pub, err := sign.MarshalPublicKey(&k.PublicKey)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor keygen: %v\n", err)
		return 1
	}
	var priv []byte
	if pw := os.Getenv("COSIGN_PASSWORD"); pw != "" {
		priv, err = sign.MarshalEncryptedPrivateKey(k, []byte(pw))
	} else {
		fmt.Fprintln(stderr, "supervisor keygen: COSIGN_PASSWORD is not set: the private key is written unencrypted (PKCS#8)")
		priv, err = sign.MarshalPrivateKey(k)
	}
	if err != nil {
		fmt.Fprintf(stderr, "supervisor keygen: %v\n", err)
		return 1
	}
	// O_EXCL: never overwrite a release key by accident.
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{*out + ".key", priv, 0o600}, {*out + ".pub", pub, 0o644}} {
		fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			fmt.Fprintf(stderr, "supervisor keygen: %v\n", err)
			return 1
		}
		_, werr := fh.Write(f.data)
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			fmt.Fprintf(stderr, "supervisor keygen: %v\n", werr)
			return 1
		}
	}
	fmt.Fprintf(stdout, "wrote %s.key and %s.pub (key %s)\n", *out, *out, sign.Fingerprint(&k.PublicKey))
	return 0
}

func runSignIndex(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign-index", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "private key (cosign.key; password in $COSIGN_PASSWORD)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 || *keyPath == "" {
		fmt.Fprintln(stderr, "usage: supervisor sign-index --key FILE INDEX")
		return 2
	}
	k, err := readPrivateKey(*keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor sign-index: %v\n", err)
		return 1
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "supervisor sign-index: %v\n", err)
		return 1
	}
	// An index that does not parse is refused here rather than by every install later.
	if _, err := release.Parse(raw); err != nil {
		fmt.Fprintf(stderr, "supervisor sign-index: %v\n", err)
		return 1
	}
	sig, err := sign.NewSigner(k).SignBlob(raw)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor sign-index: %v\n", err)
		return 1
	}
	if err := os.WriteFile(fs.Arg(0)+".sig", sig, 0o644); err != nil {
		fmt.Fprintf(stderr, "supervisor sign-index: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s.sig\n", fs.Arg(0))
	return 0
}

func parseDigestArg(fs *flag.FlagSet, stderr io.Writer, usage string) (name.Digest, bool) {
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, usage)
		return name.Digest{}, false
	}
	ref, err := name.NewDigest(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "%q is not an image by digest (REPO@sha256:...): %v\n", fs.Arg(0), err)
		return name.Digest{}, false
	}
	return ref, true
}

func runSignImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "private key (cosign.key; password in $COSIGN_PASSWORD)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ref, ok := parseDigestArg(fs, stderr, "usage: supervisor sign-image --key FILE REPO@sha256:DIGEST")
	if !ok || *keyPath == "" {
		return 2
	}
	k, err := readPrivateKey(*keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor sign-image: %v\n", err)
		return 1
	}
	s := sign.NewSigner(k, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err := s.SignImage(ctx, ref, nil); err != nil {
		fmt.Fprintf(stderr, "supervisor sign-image: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "signed %s (%s)\n", ref, sign.SignatureTag(ref))
	return 0
}

func runVerifyImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify-image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyPath := fs.String("key", "", "public key (cosign.pub)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ref, ok := parseDigestArg(fs, stderr, "usage: supervisor verify-image --key FILE REPO@sha256:DIGEST")
	if !ok || *keyPath == "" {
		return 2
	}
	pub, err := readPublicKey(*keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor verify-image: %v\n", err)
		return 1
	}
	v, _ := sign.NewVerifier([]*ecdsa.PublicKey{pub}, sign.WithRemote(remote.WithAuthFromKeychain(authn.DefaultKeychain)))
	got, err := v.VerifyImage(ctx, ref)
	if err != nil {
		fmt.Fprintf(stderr, "supervisor verify-image: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: signature verified with key %s\n", ref, got.Key)
	return 0
}
