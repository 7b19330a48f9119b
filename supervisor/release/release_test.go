package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ringbridge/ringbridge/supervisor/retry"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

func digestOf(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// rel is a release for tests: version, channel, updates_from ("" for any), migration.
func rel(v string, ch Channel, from string, migration bool) Release {
	r := Release{
		Version: MustVersion(v), Channel: ch, ConfigMigration: migration,
		Images: map[string]string{
			"ami-gateway":  "registry.example/ringbridge/ami-gateway@" + digestOf(v[0]),
			"connector-bx": "registry.example/ringbridge/connector-bx@" + digestOf(v[2]),
		},
		Changelog: "release " + v + "\nmore details",
	}
	if from != "" {
		f := MustVersion(from)
		r.UpdatesFrom = &f
	}
	return r
}

func TestPlan(t *testing.T) {
	ix := &Index{Schema: 1, Releases: []Release{
		rel("1.0.0", Stable, "", false),
		rel("1.0.1", Stable, "", false),
		rel("1.1.0", Stable, "", true), // migration in the middle
		rel("1.2.0", Stable, "", false),
		rel("1.3.0", Stable, "1.2.0", false), // cannot be reached from 1.1.x directly
		rel("1.4.0", Stable, "", false),
		rel("2.0.0-beta.1", Beta, "1.3.0", false),
		rel("2.0.0-beta.2", Beta, "", true),
		rel("2.0.0", Stable, "", false),
		rel("2.1.0-dev.1", Dev, "", false),
	}}
	raw, _ := json.Marshal(ix)
	ix, err := Parse(raw) // sorted and checked, as a loaded index is
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		channel   Channel
		installed string // "" for a fresh install
		target    string
		want      string // the chain's versions joined by " ", or the error
		wantErr   error
	}{
		{name: "skip allowed", channel: Stable, installed: "1.0.0", target: "1.0.1", want: "1.0.1"},
		{name: "migration in the middle", channel: Stable, installed: "1.0.0", target: "1.2.0", want: "1.1.0 1.2.0"},
		{name: "from the migration on", channel: Stable, installed: "1.1.0", target: "1.2.0", want: "1.2.0"},
		{name: "updates_from puts a release in between", channel: Stable, installed: "1.1.0", target: "1.3.0", want: "1.2.0 1.3.0"},
		{name: "updates_from after a migration", channel: Stable, installed: "1.0.0", target: "1.3.0", want: "1.1.0 1.2.0 1.3.0"},
		{name: "skip over updates_from when the target allows", channel: Stable, installed: "1.1.0", target: "1.4.0", want: "1.4.0"},
		{name: "beta migration blocks stable", channel: Stable, installed: "1.4.0", target: "2.0.0", wantErr: ErrNoPath},
		{name: "beta channel walks through the beta migration", channel: Beta, installed: "1.4.0", target: "2.0.0", want: "2.0.0-beta.2 2.0.0"},
		{name: "beta updates_from", channel: Beta, installed: "1.1.0", target: "2.0.0-beta.1", want: "1.4.0 2.0.0-beta.1"},
		{name: "fresh install", channel: Stable, installed: "", target: "1.4.0", want: "1.4.0"},
		{name: "already installed", channel: Stable, installed: "1.2.0", target: "1.2.0", want: ""},
		{name: "target unknown", channel: Stable, installed: "1.0.0", target: "1.9.0", wantErr: ErrUnknownVersion},
		{name: "target on a less stable channel", channel: Stable, installed: "1.0.0", target: "2.1.0-dev.1", wantErr: ErrNotOnChannel},
		{name: "downgrade refused", channel: Stable, installed: "1.2.0", target: "1.0.1", wantErr: ErrDowngrade},
		{name: "installed version no longer listed", channel: Stable, installed: "0.9.0", target: "1.0.1", want: "1.0.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var installed Version
			if c.installed != "" {
				installed = MustVersion(c.installed)
			}
			chain, err := ix.Plan(c.channel, installed, MustVersion(c.target))
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err = %v, want %v", err, c.wantErr)
				}
				if retry.Helps(err) {
					t.Fatalf("a refused plan is marked worth a retry: %v", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range chain.Steps {
				got = append(got, s.Release.Version.String())
			}
			if strings.Join(got, " ") != c.want {
				t.Fatalf("chain %q, want %q\n%s", strings.Join(got, " "), c.want, chain)
			}
		})
	}

	t.Run("printed", func(t *testing.T) {
		chain, err := ix.Plan(Stable, MustVersion("1.0.0"), MustVersion("1.3.0"))
		if err != nil {
			t.Fatal(err)
		}
		out := chain.String()
		for _, want := range []string{"1.0.0 -> 1.1.0 -> 1.2.0 -> 1.3.0", "1.1.0 (stable, config migration): carries a config migration",
			"1.2.0 (stable): 1.3.0 updates only from 1.2.0 or later", "release 1.3.0"} {
			if !strings.Contains(out, want) {
				t.Errorf("chain text lacks %q:\n%s", want, out)
			}
		}
	})
}

func TestParse(t *testing.T) {
	good := `{"schema":1,"releases":[{"version":"1.0.0","channel":"stable","images":{"ami-gateway":"r.example/a@` + digestOf('a') + `"}}]}`
	cases := []struct {
		name, raw, wantErr string
	}{
		{"good", good, ""},
		{"newer schema", strings.Replace(good, `"schema":1`, `"schema":2`, 1), "update the supervisor first"},
		{"unknown field", strings.Replace(good, `"schema":1`, `"schema":1,"extra":true`, 1), "unknown field"},
		{"tag not digest", strings.Replace(good, "@"+digestOf('a'), ":1.0.0", 1), "not a reference by digest"},
		{"bad channel", strings.Replace(good, "stable", "nightly", 1), "channel \"nightly\""},
		{"bad version", strings.Replace(good, "1.0.0", "1.0", 1), "MAJOR.MINOR.PATCH"},
		{"updates_from not older", strings.Replace(good, `"channel"`, `"updates_from":"1.0.0","channel"`, 1), "not older"},
		{"twice", strings.Replace(good, `]}`, `,{"version":"1.0.0","channel":"stable","images":{"x":"r.example/a@`+digestOf('b')+`"}}]}`, 1), "listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.raw))
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

// signedIndex returns an index of two releases, its signature by key, and a verifier for key.
func signedIndex(t *testing.T, key *ecdsa.PrivateKey) (raw, sig []byte) {
	t.Helper()
	raw, err := json.MarshalIndent(&Index{Schema: 1, Releases: []Release{rel("1.0.0", Stable, "", false), rel("1.1.0", Stable, "", true)}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	sig, err = sign.NewSigner(key).SignBlob(raw)
	if err != nil {
		t.Fatal(err)
	}
	return raw, sig
}

func writeTar(t *testing.T, path string, gz bool, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	out := buf.Bytes()
	if gz {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(out)
		zw.Close()
		out = zb.Bytes()
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoad(t *testing.T) {
	key, _ := sign.GenerateKey()
	otherKey, _ := sign.GenerateKey()
	raw, sig := signedIndex(t, key)
	otherSig, _ := sign.NewSigner(otherKey).SignBlob(raw)
	tampered := bytes.Replace(raw, []byte(`"1.1.0"`), []byte(`"1.9.0"`), 1)
	v, _ := sign.NewVerifier([]*ecdsa.PublicKey{&key.PublicKey})
	loader := NewLoader(v, nil)
	dir := t.TempDir()
	file := func(name string, body []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// An HTTP server on 127.0.0.1 serving /good, /tampered, /other (and their .sig) and /flaky (503).
	mux := http.NewServeMux()
	serve := func(path string, body, sig []byte) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
		mux.HandleFunc(path+".sig", func(w http.ResponseWriter, r *http.Request) { w.Write(sig) })
	}
	serve("/good/index.json", raw, sig)
	serve("/tampered/index.json", tampered, sig)
	serve("/other/index.json", raw, otherSig)
	mux.HandleFunc("/unsigned/index.json", func(w http.ResponseWriter, r *http.Request) { w.Write(raw) })
	mux.HandleFunc("/flaky/index.json", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	bundle := filepath.Join(dir, "bundle.tar")
	writeTar(t, bundle, false, map[string][]byte{BundleIndex: raw, BundleIndexSig: sig, "oci/oci-layout": []byte(`{}`)})
	bundleGz := filepath.Join(dir, "bundle.tar.gz")
	writeTar(t, bundleGz, true, map[string][]byte{BundleIndex: raw, BundleIndexSig: sig})
	badBundle := filepath.Join(dir, "bad.tar")
	writeTar(t, badBundle, false, map[string][]byte{BundleIndex: tampered, BundleIndexSig: sig})
	unsignedBundle := filepath.Join(dir, "unsigned.tar")
	writeTar(t, unsignedBundle, false, map[string][]byte{BundleIndex: raw})

	plain := file("index.json", raw)
	file("index.json.sig", sig)
	lonely := file("lonely.json", raw)
	badFile := file("bad.json", tampered)
	file("bad.json.sig", sig)

	cases := []struct {
		name      string
		location  string
		wantErr   error
		wantMsg   string
		wantRetry bool
	}{
		{name: "https-like URL on loopback", location: srv.URL + "/good/index.json"},
		{name: "file with .sig", location: plain},
		{name: "bundle", location: bundle},
		{name: "gzipped bundle", location: bundleGz},
		{name: "index signature bad: tampered over URL", location: srv.URL + "/tampered/index.json", wantErr: ErrBadSignature},
		{name: "index signature bad: other key", location: srv.URL + "/other/index.json", wantErr: ErrBadSignature},
		{name: "index signature missing over URL", location: srv.URL + "/unsigned/index.json", wantMsg: "404"},
		{name: "index signature bad: tampered file", location: badFile, wantErr: ErrBadSignature},
		{name: "index signature missing beside the file", location: lonely, wantErr: ErrBadSignature},
		{name: "index signature bad in a bundle", location: badBundle, wantErr: ErrBadSignature},
		{name: "bundle without signature", location: unsignedBundle, wantErr: ErrBadSignature},
		{name: "server unavailable", location: srv.URL + "/flaky/index.json", wantMsg: "503", wantRetry: true},
		{name: "plain http elsewhere refused", location: "http://releases.example/index.json", wantMsg: "use https://"},
		{name: "missing file", location: filepath.Join(dir, "nope.json"), wantMsg: "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ix, err := loader.Load(context.Background(), c.location)
			if c.wantErr == nil && c.wantMsg == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(ix.Releases) != 2 || ix.Releases[1].Version.String() != "1.1.0" || !ix.Releases[1].ConfigMigration {
					t.Fatalf("index %+v", ix)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded")
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantMsg) {
				t.Fatalf("err = %v, want %q", err, c.wantMsg)
			}
			if retry.Helps(err) != c.wantRetry {
				t.Fatalf("retry helps = %v for %v", retry.Helps(err), err)
			}
		})
	}
}
