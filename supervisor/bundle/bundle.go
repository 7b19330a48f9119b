// Package bundle is the offline form of releases, for servers without internet: one tar file
// holding the signed index (index.json, index.json.sig) and, under oci/, an OCI image layout with
// every image of the bundled releases and its cosign signature image. Each layout entry is named by
// its reference in the annotation org.opencontainers.image.ref.name: "repo@sha256:…" for an image,
// "repo:sha256-<hex>.sig" for its signatures, exactly the tag cosign uses in a registry. Nothing
// in a bundle is trusted for being there: the index signature and every image signature are
// checked with the install's key, as for a registry.
package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

// refAnnotation names a layout entry (OCI image-spec annotations).
const refAnnotation = "org.opencontainers.image.ref.name"

// Entry is one image in a bundle with its signature image.
type Entry struct {
	Ref        name.Digest
	Image      v1.Image
	Signatures v1.Image // the image at Ref's .sig tag
}

// Write writes a bundle of the signed index (raw bytes and signature) and entries to w.
func Write(w io.Writer, index, indexSig []byte, entries []Entry) error {
	dir, err := os.MkdirTemp("", "ringbridge-bundle-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(filepath.Join(dir, release.BundleLayoutDir), empty.Index)
	if err != nil {
		return fmt.Errorf("bundle layout: %w", err)
	}
	for _, e := range entries {
		if err := lp.AppendImage(e.Image, layout.WithAnnotations(map[string]string{refAnnotation: e.Ref.String()})); err != nil {
			return fmt.Errorf("bundle: %s: %w", e.Ref, err)
		}
		if e.Signatures != nil {
			tag := sign.SignatureTag(e.Ref)
			if err := lp.AppendImage(e.Signatures, layout.WithAnnotations(map[string]string{refAnnotation: tag.String()})); err != nil {
				return fmt.Errorf("bundle: signatures of %s: %w", e.Ref, err)
			}
		}
	}
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		body []byte
	}{{release.BundleIndex, index}, {release.BundleIndexSig, indexSig}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	err = filepath.WalkDir(filepath.Join(dir, release.BundleLayoutDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st, err := d.Info()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return tw.Close()
}

// Bundle is an opened bundle: its verified index and its layout, unpacked in a temp directory
// until Close.
type Bundle struct {
	Index *release.Index
	dir   string
	idx   v1.ImageIndex
	byRef map[string]v1.Hash
}

// Open unpacks the bundle at path, checks its index signature with v and reads its layout.
func Open(ctx context.Context, path string, v release.BlobVerifier) (*Bundle, error) {
	ix, err := release.NewLoader(v, nil).Load(ctx, path)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ringbridge-import-*")
	if err != nil {
		return nil, err
	}
	b := &Bundle{Index: ix, dir: dir, byRef: map[string]v1.Hash{}}
	if err := unpack(path, dir); err != nil {
		b.Close()
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	if b.idx, err = layout.ImageIndexFromPath(filepath.Join(dir, release.BundleLayoutDir)); err != nil {
		b.Close()
		return nil, fmt.Errorf("bundle %s: no OCI layout under %s/: %w", path, release.BundleLayoutDir, err)
	}
	m, err := b.idx.IndexManifest()
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	for _, d := range m.Manifests {
		if r := d.Annotations[refAnnotation]; r != "" {
			b.byRef[r] = d.Digest
		}
	}
	return b, nil
}

// Close removes the unpacked copy.
func (b *Bundle) Close() error { return os.RemoveAll(b.dir) }

// Image returns the image ref names, checking that the layout holds exactly that digest.
func (b *Bundle) Image(ref name.Digest) (v1.Image, error) {
	h, ok := b.byRef[ref.String()]
	if !ok {
		return nil, fmt.Errorf("the bundle does not hold %s", ref)
	}
	if h.String() != ref.DigestStr() {
		return nil, fmt.Errorf("the bundle's %s has digest %s", ref, h)
	}
	return b.idx.Image(h)
}

// Verifier checks images against the signatures a bundle carries (an update.Verifier for images
// imported from it).
type Verifier struct {
	b *Bundle
	v *sign.Verifier
}

// Verifier returns a verifier of the bundle's images with the install's key.
func (b *Bundle) Verifier(v *sign.Verifier) *Verifier { return &Verifier{b: b, v: v} }

// VerifyImage checks ref's signature with the bundle's copy of its .sig tag.
func (bv *Verifier) VerifyImage(_ context.Context, ref name.Digest) (*sign.Verified, error) {
	tag := sign.SignatureTag(ref)
	h, ok := bv.b.byRef[tag.String()]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no signature in the bundle (no %s); refusing it", sign.ErrUnsigned, ref, tag.TagStr())
	}
	sigs, err := bv.b.idx.Image(h)
	if err != nil {
		return nil, fmt.Errorf("the bundle's signatures of %s: %w", ref, err)
	}
	return bv.v.VerifySignatures(sigs, ref)
}

// unpack extracts the tar (or gzipped tar) file into dir, refusing entries that would land
// outside it and anything but files and directories.
func unpack(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if head, _ := br.Peek(2); bytes.Equal(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		clean := path.Clean("/" + h.Name)
		if strings.Contains(h.Name, "..") || clean == "/" {
			return fmt.Errorf("entry %q is outside the bundle", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(clean))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q is not a file or directory", h.Name)
		}
	}
}
