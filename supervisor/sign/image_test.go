package sign

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ringbridge/ringbridge/supervisor/registrytest"
	"github.com/ringbridge/ringbridge/supervisor/retry"
)

func pushRandom(t *testing.T, reg *registrytest.Registry, repo, seed string) name.Digest {
	t.Helper()
	img, err := registrytest.RandomScratchImage(seed)
	if err != nil {
		t.Fatal(err)
	}
	return reg.Push(t, img, repo, seed)
}

// pushSignatureLayer writes a signature image with one layer (payload, sig) at ref's .sig tag,
// replacing what is there: how an attacker with write access to the registry would try it.
func pushSignatureLayer(t *testing.T, ref name.Digest, payload, sig []byte) {
	t.Helper()
	img, err := AppendSignature(nil, payload, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(SignatureTag(ref), img); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyImage(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t)
	key, _ := GenerateKey()
	otherKey, _ := GenerateKey()
	signer := NewSigner(key)
	v, err := NewVerifier([]*ecdsa.PublicKey{&key.PublicKey})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		prepare func(t *testing.T, ref name.Digest)
		want    error // nil: verifies
		msg     string
	}{
		{
			name:    "signed",
			prepare: func(t *testing.T, ref name.Digest) { mustSign(t, signer, ref) },
		},
		{
			name:    "unsigned",
			prepare: func(t *testing.T, ref name.Digest) {},
			want:    ErrUnsigned,
			msg:     "has no signature",
		},
		{
			name:    "other key",
			prepare: func(t *testing.T, ref name.Digest) { mustSign(t, NewSigner(otherKey), ref) },
			want:    ErrInvalid,
			msg:     "not made by the trusted key",
		},
		{
			name: "tampered payload",
			prepare: func(t *testing.T, ref name.Digest) {
				payload, sig, err := signer.SignatureLayer(ref, nil)
				if err != nil {
					t.Fatal(err)
				}
				tampered := []byte(strings.Replace(string(payload), `"optional":null`, `"optional":{"x":"y"}`, 1))
				pushSignatureLayer(t, ref, tampered, sig)
			},
			want: ErrInvalid,
			msg:  "not made by the trusted key",
		},
		{
			name: "digest mismatch",
			prepare: func(t *testing.T, ref name.Digest) {
				// A genuine signature of another image, copied to this image's .sig tag.
				other := pushRandom(t, reg, "ringbridge/other", "other")
				payload, sig, err := signer.SignatureLayer(other, nil)
				if err != nil {
					t.Fatal(err)
				}
				pushSignatureLayer(t, ref, payload, sig)
			},
			want: ErrInvalid,
			msg:  "signed payload is for image sha256:",
		},
		{
			name: "other repository",
			prepare: func(t *testing.T, ref name.Digest) {
				elsewhere := reg.Repo("somebody/else").Digest(ref.DigestStr())
				payload, sig, err := signer.SignatureLayer(elsewhere, nil)
				if err != nil {
					t.Fatal(err)
				}
				pushSignatureLayer(t, ref, payload, sig)
			},
			want: ErrInvalid,
			msg:  "signed payload is for repository",
		},
		{
			name: "bad then good signature",
			prepare: func(t *testing.T, ref name.Digest) {
				mustSign(t, NewSigner(otherKey), ref)
				mustSign(t, signer, ref)
			},
		},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := pushRandom(t, reg, "ringbridge/svc", strings.Repeat("x", i+1))
			c.prepare(t, ref)
			got, err := v.VerifyImage(ctx, ref)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got.Payload.Critical.Image.DockerManifestDigest != ref.DigestStr() || got.Key != Fingerprint(&key.PublicKey) {
					t.Fatalf("verified %+v", got)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), ref.DigestStr()) {
				t.Fatalf("message %q does not say %q about %s", err, c.msg, ref.DigestStr())
			}
			if retry.Helps(err) {
				t.Fatalf("a refused signature is marked worth a retry: %v", err)
			}
		})
	}

	t.Run("signed twice keeps one layer", func(t *testing.T) {
		ref := pushRandom(t, reg, "ringbridge/svc", "twice")
		mustSign(t, signer, ref)
		mustSign(t, signer, ref)
		img, err := remote.Image(SignatureTag(ref))
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		if len(m.Layers) != 1 {
			t.Fatalf("%d signature layers", len(m.Layers))
		}
	})

	t.Run("mirror accepted by reference", func(t *testing.T) {
		// Signed at the publishing repository, then copied to a mirror with its signature.
		ref := pushRandom(t, reg, "ringbridge/published", "mirror")
		mustSign(t, signer, ref)
		img, _ := remote.Image(ref)
		mirror := reg.Push(t, img, "mirror/svc", "mirror")
		sigs, _ := remote.Image(SignatureTag(ref))
		if err := remote.Write(SignatureTag(mirror), sigs); err != nil {
			t.Fatal(err)
		}
		if _, err := v.VerifyImage(ctx, mirror); !errors.Is(err, ErrInvalid) {
			t.Fatalf("mirror without WithReferences: err = %v", err)
		}
		vm, _ := NewVerifier([]*ecdsa.PublicKey{&key.PublicKey}, WithReferences(ref.Repository.Name()))
		if _, err := vm.VerifyImage(ctx, mirror); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		ref := pushRandom(t, reg, "ringbridge/svc", "rotation")
		mustSign(t, NewSigner(otherKey), ref)
		both, _ := NewVerifier([]*ecdsa.PublicKey{&key.PublicKey, &otherKey.PublicKey})
		if _, err := both.VerifyImage(ctx, ref); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("registry down is worth a retry", func(t *testing.T) {
		dead := registrytest.Start(t)
		ref := dead.Repo("ringbridge/svc").Digest("sha256:" + strings.Repeat("a", 64))
		dead.Close()
		_, err := v.VerifyImage(ctx, ref)
		if err == nil || !retry.Helps(err) {
			t.Fatalf("err = %v, retry helps = %v", err, retry.Helps(err))
		}
	})
}

func mustSign(t *testing.T, s *Signer, ref name.Digest) {
	t.Helper()
	if err := s.SignImage(context.Background(), ref, nil); err != nil {
		t.Fatal(err)
	}
}

// TestPayloadBytes pins the payload to the bytes cosign writes for the same reference
// (sigstore/sigstore payload.Cosign.MarshalJSON with no annotations).
func TestPayloadBytes(t *testing.T) {
	ref, err := name.NewDigest("127.0.0.1:5000/crm/gw@sha256:" + strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(NewPayload(ref, nil))
	want := `{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/crm/gw"},"image":{"docker-manifest-digest":"sha256:` +
		strings.Repeat("0", 64) + `"},"type":"cosign container image signature"},"optional":null}`
	if string(got) != want {
		t.Fatalf("payload\n got %s\nwant %s", got, want)
	}
	if SignatureTag(ref).String() != "127.0.0.1:5000/crm/gw:sha256-"+strings.Repeat("0", 64)+".sig" {
		t.Fatalf("tag %s", SignatureTag(ref))
	}
}
