package release

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/ringbridge/ringbridge/supervisor/retry"
)

// Names inside an offline bundle (a tar, optionally gzipped): the index and its signature at the
// top, the images and their signatures as an OCI image layout under BundleLayoutDir.
const (
	BundleIndex     = "index.json"
	BundleIndexSig  = "index.json.sig"
	BundleLayoutDir = "oci"
)

// maxIndex bounds an index download: a few hundred releases are a few hundred kilobytes.
const maxIndex = 8 << 20

// ErrBadSignature is under every error for an index whose signature does not hold or is missing.
var ErrBadSignature = errors.New("release index signature does not verify")

// BlobVerifier checks a detached signature over bytes (sign.Verifier, with the install's key).
type BlobVerifier interface {
	VerifyBlob(blob, sig []byte) error
}

// Decode checks sig over raw with v and only then parses raw: nothing of an index is believed
// before its signature holds.
func Decode(raw, sig []byte, v BlobVerifier) (*Index, error) {
	if err := v.VerifyBlob(raw, sig); err != nil {
		return nil, fmt.Errorf("%w: %v; the index was changed after signing or was not signed with the release key, so none of it is used", ErrBadSignature, err)
	}
	return Parse(raw)
}

// Loader reads the signed index from where the install's config says.
type Loader struct {
	verifier BlobVerifier
	http     *http.Client
}

// NewLoader checks indexes with v and downloads them with client (http.DefaultClient when nil).
func NewLoader(v BlobVerifier, client *http.Client) *Loader {
	if client == nil {
		client = http.DefaultClient
	}
	return &Loader{verifier: v, http: client}
}

// Load reads the index at location: an https:// URL (its signature at the same URL + ".sig"), an
// offline bundle file (a tar holding index.json and index.json.sig), or a plain index file with
// its signature beside it (FILE.sig). Plain http:// is accepted for loopback addresses only, for
// tests and a local mirror: the signature protects the content, but not from being held back.
func (l *Loader) Load(ctx context.Context, location string) (*Index, error) {
	if strings.Contains(location, "://") {
		return l.fetch(ctx, location)
	}
	raw, sig, err := readLocal(location)
	if err != nil {
		return nil, err
	}
	ix, err := Decode(raw, sig, l.verifier)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	return ix, nil
}

func (l *Loader) fetch(ctx context.Context, raw string) (*Index, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("release index URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("release index URL %s: use https:// (plain http only to a loopback address)", u.Redacted())
	}
	body, err := l.get(ctx, u.String())
	if err != nil {
		return nil, err
	}
	sig, err := l.get(ctx, u.String()+".sig")
	if err != nil {
		return nil, fmt.Errorf("the index signature: %w", err)
	}
	ix, err := Decode(body, sig, l.verifier)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	return ix, nil
}

func (l *Loader) get(ctx context.Context, rawURL string) ([]byte, error) {
	shown := rawURL
	if u, err := url.Parse(rawURL); err == nil {
		shown = u.Redacted()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", shown, err)
	}
	resp, err := l.http.Do(req)
	if err != nil {
		return nil, retry.Temporary(fmt.Errorf("GET %s: %w", shown, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("GET %s: %s", shown, resp.Status)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
			return nil, retry.Temporary(err)
		}
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIndex+1))
	if err != nil {
		return nil, retry.Temporary(fmt.Errorf("GET %s: %w", shown, err))
	}
	if len(body) > maxIndex {
		return nil, fmt.Errorf("GET %s: more than %d bytes: not a release index", shown, maxIndex)
	}
	return body, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readLocal reads an index and its signature from a bundle or from FILE and FILE.sig.
func readLocal(path string) (raw, sig []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("release index: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	tr, isBundle, err := bundleReader(br)
	if err != nil {
		return nil, nil, fmt.Errorf("release bundle %s: %w", path, err)
	}
	if !isBundle {
		if raw, err = io.ReadAll(io.LimitReader(br, maxIndex+1)); err != nil {
			return nil, nil, fmt.Errorf("release index %s: %w", path, err)
		}
		if sig, err = os.ReadFile(path + ".sig"); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, nil, fmt.Errorf("%w: %s has no signature beside it (%s.sig)", ErrBadSignature, path, path)
			}
			return nil, nil, fmt.Errorf("release index signature: %w", err)
		}
		return raw, sig, nil
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("release bundle %s: %w", path, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case BundleIndex:
			raw, err = io.ReadAll(io.LimitReader(tr, maxIndex+1))
		case BundleIndexSig:
			sig, err = io.ReadAll(io.LimitReader(tr, 64<<10))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("release bundle %s: %w", path, err)
		}
	}
	if raw == nil {
		return nil, nil, fmt.Errorf("release bundle %s holds no %s: not a ringbridge bundle", path, BundleIndex)
	}
	if sig == nil {
		return nil, nil, fmt.Errorf("%w: release bundle %s holds no %s", ErrBadSignature, path, BundleIndexSig)
	}
	return raw, sig, nil
}

// bundleReader tells a bundle (a tar, or a gzipped tar) from a plain index by its first bytes and
// returns a tar reader over it when it is one.
func bundleReader(br *bufio.Reader) (*tar.Reader, bool, error) {
	head, _ := br.Peek(512)
	if bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, false, err
		}
		return tar.NewReader(zr), true, nil
	}
	if len(head) >= 262 && string(head[257:262]) == "ustar" {
		return tar.NewReader(br), true, nil
	}
	return nil, false, nil
}
