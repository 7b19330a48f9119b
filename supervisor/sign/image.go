package sign

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ringbridge/ringbridge/supervisor/retry"
)

// The names cosign uses (sigstore/cosign pkg/oci/static/signature.go, sigstore/sigstore
// pkg/signature/payload/payload.go).
const (
	// SimpleSigningMediaType is the media type of a signature layer; its blob is the payload.
	SimpleSigningMediaType types.MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds the base64 signature of the layer's payload.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// PayloadType is critical.type of every cosign image signature payload.
	PayloadType = "cosign container image signature"
)

// maxPayload bounds what is read of one signature layer: a payload is a few hundred bytes, and a
// hostile registry must not make the supervisor read gigabytes.
const maxPayload = 1 << 20

// Payload is the simple-signing payload cosign signs, with cosign's JSON field names and order, so
// the bytes this package makes are the bytes cosign makes for the same image.
type Payload struct {
	Critical Critical       `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Critical is the part of the payload a verifier must check.
type Critical struct {
	Identity Identity `json:"identity"`
	Image    Image    `json:"image"`
	Type     string   `json:"type"`
}

// Identity names the repository the signer meant (without tag or digest).
type Identity struct {
	DockerReference string `json:"docker-reference"`
}

// Image names the signed manifest.
type Image struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// NewPayload is the payload for ref, as cosign sign writes it for the same reference.
func NewPayload(ref name.Digest, optional map[string]any) Payload {
	return Payload{
		Critical: Critical{
			Identity: Identity{DockerReference: ref.Repository.Name()},
			Image:    Image{DockerManifestDigest: ref.DigestStr()},
			Type:     PayloadType,
		},
		Optional: optional,
	}
}

// SignatureTag is where cosign keeps the signatures of ref: sha256-<hex>.sig in the same repository.
func SignatureTag(ref name.Digest) name.Tag {
	return ref.Repository.Tag(strings.Replace(ref.DigestStr(), ":", "-", 1) + ".sig")
}

// Signer makes signatures with one private key.
type Signer struct {
	key    *ecdsa.PrivateKey
	remote []remote.Option
}

// NewSigner signs with key; opts reach the registry (authentication, transport).
func NewSigner(key *ecdsa.PrivateKey, opts ...remote.Option) *Signer {
	return &Signer{key: key, remote: opts}
}

// Public is the key that verifies this signer's signatures.
func (s *Signer) Public() *ecdsa.PublicKey { return &s.key.PublicKey }

// SignatureLayer returns the payload for ref and its base64 signature, the two parts of a
// signature layer; SignImage pushes them, an offline bundle writes them into its layout.
func (s *Signer) SignatureLayer(ref name.Digest, optional map[string]any) (payload, sig []byte, err error) {
	payload, err = json.Marshal(NewPayload(ref, optional))
	if err != nil {
		return nil, nil, err
	}
	der, err := signDigest(s.key, payload)
	if err != nil {
		return nil, nil, err
	}
	return payload, []byte(base64Std.EncodeToString(der)), nil
}

// AppendSignature adds a signature layer to base (the image at the .sig tag, or nil for none yet)
// the way cosign does: an OCI manifest, one simple-signing layer per signature.
func AppendSignature(base v1.Image, payload, sig []byte) (v1.Image, error) {
	if base == nil {
		base = mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	}
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:       static.NewLayer(payload, SimpleSigningMediaType),
		Annotations: map[string]string{SignatureAnnotation: string(sig)},
	})
	if err != nil {
		return nil, fmt.Errorf("adding the signature layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	if cfg.Created.IsZero() {
		// cosign stamps the signing time the same way.
		if img, err = mutate.CreatedAt(img, v1.Time{Time: time.Now().UTC().Truncate(time.Second)}); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// SignImage signs the image ref names and pushes the signature to ref's sha256-<hex>.sig tag,
// keeping the signatures already there (cosign's behaviour). Signing an image twice with the same
// key adds nothing.
func (s *Signer) SignImage(ctx context.Context, ref name.Digest, optional map[string]any) error {
	opts := append([]remote.Option{remote.WithContext(ctx)}, s.remote...)
	tag := SignatureTag(ref)
	base, err := remote.Image(tag, opts...)
	switch {
	case isNotFound(err):
		base = nil
	case err != nil:
		return registryError(fmt.Sprintf("reading the signatures of %s", ref), err)
	default:
		if _, err := verifySignatureImage(base, ref, []*ecdsa.PublicKey{s.Public()}, nil); err == nil {
			return nil
		}
	}
	payload, sig, err := s.SignatureLayer(ref, optional)
	if err != nil {
		return err
	}
	img, err := AppendSignature(base, payload, sig)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return registryError(fmt.Sprintf("pushing the signature of %s to %s", ref, tag), err)
	}
	return nil
}

// Verifier checks signatures against the public keys an install trusts (more than one while a key
// is being rotated).
type Verifier struct {
	keys   []*ecdsa.PublicKey
	remote []remote.Option
	// references are more docker-reference values accepted besides the repository the image is
	// read from (a mirror of the signed repository).
	references map[string]bool
}

// VerifierOption changes NewVerifier's verifier.
type VerifierOption func(*Verifier)

// WithRemote passes options to the registry client (authentication, transport).
func WithRemote(opts ...remote.Option) VerifierOption {
	return func(v *Verifier) { v.remote = append(v.remote, opts...) }
}

// WithReferences accepts signatures whose docker-reference is one of repos, as well as the
// repository the image is read from: for images signed at their publishing repository and then
// copied to a mirror or an offline bundle. The digest is checked all the same.
func WithReferences(repos ...string) VerifierOption {
	return func(v *Verifier) {
		for _, r := range repos {
			v.references[r] = true
		}
	}
}

// NewVerifier trusts keys, at least one.
func NewVerifier(keys []*ecdsa.PublicKey, opts ...VerifierOption) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("no trusted public key: set supervisor.public_key to the release key (cosign.pub)")
	}
	v := &Verifier{keys: keys, references: map[string]bool{}}
	for _, o := range opts {
		o(v)
	}
	return v, nil
}

// Verified says which signature of an image held.
type Verified struct {
	Ref     name.Digest
	Key     string // fingerprint of the key it verified with
	Payload Payload
}

// VerifyImage checks that the image ref names carries a signature, at its sha256-<hex>.sig tag,
// made with a trusted key over a payload that names exactly ref's digest and repository. The
// error wraps ErrUnsigned when there is no signature and ErrInvalid when none holds; a registry
// or network failure is marked as worth a retry.
func (v *Verifier) VerifyImage(ctx context.Context, ref name.Digest) (*Verified, error) {
	opts := append([]remote.Option{remote.WithContext(ctx)}, v.remote...)
	tag := SignatureTag(ref)
	sigs, err := remote.Image(tag, opts...)
	if isNotFound(err) {
		return nil, fmt.Errorf("%w: %s has no signature (no tag %s): it was not published by the holder of the release key; refusing it",
			ErrUnsigned, ref, tag.TagStr())
	}
	if err != nil {
		return nil, registryError(fmt.Sprintf("reading the signatures of %s", ref), err)
	}
	return verifySignatureImage(sigs, ref, v.keys, v.references)
}

// VerifySignatures is VerifyImage for a signature image already at hand (read from an offline
// bundle's layout rather than a registry).
func (v *Verifier) VerifySignatures(sigs v1.Image, ref name.Digest) (*Verified, error) {
	return verifySignatureImage(sigs, ref, v.keys, v.references)
}

func verifySignatureImage(sigs v1.Image, ref name.Digest, keys []*ecdsa.PublicKey, refs map[string]bool) (*Verified, error) {
	m, err := sigs.Manifest()
	if err != nil {
		return nil, registryError(fmt.Sprintf("reading the signature manifest of %s", ref), err)
	}
	var reasons []string
	for i, desc := range m.Layers {
		res, reason := verifyLayer(sigs, desc, ref, keys, refs)
		if res != nil {
			return res, nil
		}
		reasons = append(reasons, fmt.Sprintf("signature %d: %s", i+1, reason))
	}
	if len(reasons) == 0 {
		return nil, fmt.Errorf("%w: %s: its signature manifest holds no signature layer", ErrUnsigned, ref)
	}
	return nil, fmt.Errorf("%w: %s: no signature holds (%s); refusing it", ErrInvalid, ref, strings.Join(reasons, "; "))
}

// verifyLayer checks one signature layer; it returns the result, or why the layer does not count.
func verifyLayer(sigs v1.Image, desc v1.Descriptor, ref name.Digest, keys []*ecdsa.PublicKey, refs map[string]bool) (*Verified, string) {
	if desc.MediaType != SimpleSigningMediaType {
		return nil, fmt.Sprintf("layer type %s is not a cosign signature", desc.MediaType)
	}
	b64 := desc.Annotations[SignatureAnnotation]
	if b64 == "" {
		return nil, "no " + SignatureAnnotation + " annotation"
	}
	if desc.Size > maxPayload {
		return nil, fmt.Sprintf("payload of %d bytes is too large", desc.Size)
	}
	layer, err := sigs.LayerByDigest(desc.Digest)
	if err != nil {
		return nil, fmt.Sprintf("payload %s: %v", desc.Digest, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, fmt.Sprintf("payload %s: %v", desc.Digest, err)
	}
	payload, err := io.ReadAll(io.LimitReader(rc, maxPayload+1))
	rc.Close()
	if err != nil {
		return nil, fmt.Sprintf("payload %s: %v", desc.Digest, err)
	}
	// The manifest names the payload by digest; checking it here does not depend on the registry
	// client having done so.
	if got := fmt.Sprintf("sha256:%x", sha256Sum(payload)); got != desc.Digest.String() {
		return nil, fmt.Sprintf("payload bytes hash to %s, not the %s the manifest names", got, desc.Digest)
	}
	der, err := decodeSignature([]byte(b64))
	if err != nil {
		return nil, err.Error()
	}
	key := verifyWithAny(keys, payload, der)
	if key == "" {
		return nil, "not made by the trusted key over this payload (another key, or the payload was changed)"
	}
	// Only a payload whose signature holds is parsed: its content is the signer's word.
	var p Payload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Sprintf("signed payload is not JSON: %v", err)
	}
	if p.Critical.Type != PayloadType {
		return nil, fmt.Sprintf("signed payload is of type %q, not %q", p.Critical.Type, PayloadType)
	}
	if p.Critical.Image.DockerManifestDigest != ref.DigestStr() {
		return nil, fmt.Sprintf("signed payload is for image %s, not %s", p.Critical.Image.DockerManifestDigest, ref.DigestStr())
	}
	if got := p.Critical.Identity.DockerReference; got != ref.Repository.Name() && !refs[got] {
		return nil, fmt.Sprintf("signed payload is for repository %s, not %s", got, ref.Repository.Name())
	}
	return &Verified{Ref: ref, Key: key, Payload: p}, ""
}

func isNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// registryError wraps a registry failure, marking it temporary when the registry or the network
// may answer better later (ggcr's transport.Error knows which status codes are).
func registryError(what string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		if te.Temporary() {
			return retry.Temporary(fmt.Errorf("%s: %w", what, err))
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if retry.Helps(err) {
		return retry.Temporary(fmt.Errorf("%s: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}
