// Package registrytest gives the supervisor's tests a real OCI registry and real images without
// the internet: go-containerregistry's in-process registry listening on 127.0.0.1 (which the
// Docker Engine on the same host treats as an insecure registry by default, so docker pull works
// against it), and images built FROM scratch in memory.
package registrytest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is an in-memory registry serving on 127.0.0.1:<free port>.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of every reference pushed to it.
	Host string
	srv  *http.Server
}

// Start runs a registry until the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith runs a registry whose handler is wrapped by wrap (nil: none), for tests that make the
// registry slow, hang or fail.
func StartWith(t testing.TB, wrap func(http.Handler) http.Handler) *Registry {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	r := &Registry{Host: ln.Addr().String()}
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	r.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(r.Close)
	return r
}

// Close stops the registry; what it held is gone.
func (r *Registry) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// Repo is the repository path under this registry: r.Repo("ringbridge/ami-gateway").
func (r *Registry) Repo(path string) name.Repository {
	repo, err := name.NewRepository(r.Host + "/" + path)
	if err != nil {
		panic(err)
	}
	return repo
}

// Push writes img to repo:tag and returns its reference by digest.
func (r *Registry) Push(t testing.TB, img v1.Image, repo, tag string) name.Digest {
	t.Helper()
	d, err := PushTo(context.Background(), img, r.Repo(repo).Tag(tag))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// PushTo writes img to tag and returns its reference by digest.
func PushTo(ctx context.Context, img v1.Image, tag name.Tag) (name.Digest, error) {
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", tag, err)
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return tag.Repository.Digest(h.String()), nil
}

// File is one entry of a layer built by Layer.
type File struct {
	Mode int64 // 0755 for a binary; a directory when Dir is set
	Dir  bool
	Body []byte
}

// Layer builds an uncompressed tar layer holding files (path without a leading slash -> file),
// with fixed times so the same files give the same digest.
func Layer(files map[string]File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	epoch := time.Unix(0, 0)
	for _, p := range paths {
		f := files[p]
		h := &tar.Header{Name: p, Mode: f.Mode, ModTime: epoch, Typeflag: tar.TypeReg, Size: int64(len(f.Body))}
		if f.Dir {
			h.Typeflag, h.Size, h.Name = tar.TypeDir, 0, p+"/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if !f.Dir {
			if _, err := tw.Write(f.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// ScratchImage is an image FROM scratch for linux/amd64 with layers and cfg, created at a fixed
// time so the same input gives the same digest.
func ScratchImage(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// dockerd checks the platform: empty.Image has none.
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = cfg
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	return img, nil
}

// RandomScratchImage is a small image whose content is a marker file holding seed: different seeds
// give different digests. For tests that need images, not programs.
func RandomScratchImage(seed string) (v1.Image, error) {
	l, err := Layer(map[string]File{"seed": {Mode: 0o644, Body: []byte(seed)}})
	if err != nil {
		return nil, err
	}
	return ScratchImage(v1.Config{Labels: map[string]string{"seed": seed}}, l)
}
