package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/supervisor/registrytest"
)

// cosignBinary is the cosign CLI to check compatibility with: $COSIGN, else cosign on PATH
// (go install github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5). The CLI is a test tool only and
// CI does not install it (it takes minutes to build), so this test is skipped without it.
func cosignBinary(t *testing.T) string {
	if p := os.Getenv("COSIGN"); p != "" {
		return p
	}
	p, err := exec.LookPath("cosign")
	if err != nil {
		t.Skip("cosign CLI not found (set COSIGN or put it on PATH): the interoperability check is skipped")
	}
	return p
}

// TestCosignInterop runs the real cosign CLI against the in-process registry, fully offline:
// cosign reads ringbridge's keys and signatures, and ringbridge reads cosign's.
func TestCosignInterop(t *testing.T) {
	bin := cosignBinary(t)
	reg := registrytest.Start(t)
	dir := t.TempDir()
	const password = "interop-password"
	cosign := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		// Offline: no transparency log, a TUF cache of our own, no update check.
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+password, "TUF_ROOT="+filepath.Join(dir, "tuf"),
			"SIGSTORE_NO_CACHE=true", "COSIGN_EXPERIMENTAL=0")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("cosign verifies ringbridge's signature, made with cosign's key", func(t *testing.T) {
		if out, err := cosign(t, "generate-key-pair", "--output-key-prefix", "made-by-cosign"); err != nil {
			t.Fatalf("generate-key-pair: %v\n%s", err, out)
		}
		keyPEM, _ := os.ReadFile(filepath.Join(dir, "made-by-cosign.key"))
		pubPEM, _ := os.ReadFile(filepath.Join(dir, "made-by-cosign.pub"))
		key, err := ParsePrivateKey(keyPEM, []byte(password))
		if err != nil {
			t.Fatalf("reading cosign's encrypted key: %v", err)
		}
		pub, err := ParsePublicKey(pubPEM)
		if err != nil || !pub.Equal(&key.PublicKey) {
			t.Fatalf("reading cosign.pub: %v", err)
		}
		ref := pushRandom(t, reg, "ringbridge/ami-gateway", "signed-by-ringbridge")
		if err := NewSigner(key).SignImage(context.Background(), ref, nil); err != nil {
			t.Fatal(err)
		}
		out, err := cosign(t, "verify", "--key", "made-by-cosign.pub", "--insecure-ignore-tlog=true",
			"--allow-http-registry", ref.String())
		if err != nil {
			t.Fatalf("cosign verify refused ringbridge's signature: %v\n%s", err, out)
		}
		if !strings.Contains(out, ref.DigestStr()) {
			t.Fatalf("cosign verify output does not name the digest:\n%s", out)
		}

		unsigned := pushRandom(t, reg, "ringbridge/ami-gateway", "unsigned")
		if out, err := cosign(t, "verify", "--key", "made-by-cosign.pub", "--insecure-ignore-tlog=true",
			"--allow-http-registry", unsigned.String()); err == nil {
			t.Fatalf("cosign verify accepted an unsigned image:\n%s", out)
		}
	})

	t.Run("ringbridge verifies cosign's signature, made with ringbridge's key", func(t *testing.T) {
		key, _ := GenerateKey()
		encPEM, err := MarshalEncryptedPrivateKey(key, []byte(password))
		if err != nil {
			t.Fatal(err)
		}
		write("made-by-ringbridge.key", encPEM)
		ref := pushRandom(t, reg, "ringbridge/connector-bx", "signed-by-cosign")
		out, err := cosign(t, "sign", "--key", "made-by-ringbridge.key", "--tlog-upload=false",
			"--allow-http-registry", "-y", ref.String())
		if err != nil {
			t.Fatalf("cosign sign with ringbridge's encrypted key: %v\n%s", err, out)
		}
		v, _ := NewVerifier([]*ecdsa.PublicKey{&key.PublicKey})
		got, err := v.VerifyImage(context.Background(), ref)
		if err != nil {
			t.Fatalf("ringbridge refused cosign's signature: %v", err)
		}
		t.Logf("cosign's signature verified with key %s; payload optional=%v", got.Key, got.Payload.Optional)

		other, _ := GenerateKey()
		vo, _ := NewVerifier([]*ecdsa.PublicKey{&other.PublicKey})
		if _, err := vo.VerifyImage(context.Background(), ref); err == nil {
			t.Fatal("cosign's signature verified with another key")
		}
	})

	t.Run("cosign verify-blob accepts ringbridge's index signature", func(t *testing.T) {
		key, _ := GenerateKey()
		pubPEM, _ := MarshalPublicKey(&key.PublicKey)
		plainPEM, _ := MarshalPrivateKey(key)
		write("blob.pub", pubPEM)
		blob := []byte(`{"schema":1,"releases":[]}`)
		write("index.json", blob)
		sig, err := NewSigner(key).SignBlob(blob)
		if err != nil {
			t.Fatal(err)
		}
		write("index.json.sig", sig)
		out, err := cosign(t, "verify-blob", "--key", "blob.pub", "--signature", "index.json.sig",
			"--insecure-ignore-tlog=true", "index.json")
		if err != nil {
			t.Fatalf("cosign verify-blob: %v\n%s", err, out)
		}
		// And the other way: cosign sign-blob with a plain PKCS#8 key ringbridge wrote (cosign
		// import-key-pair's input format) verifies here.
		write("plain.key", plainPEM)
		if out, err := cosign(t, "import-key-pair", "--key", "plain.key", "--output-key-prefix", "imported"); err != nil {
			t.Fatalf("cosign import-key-pair of ringbridge's PKCS#8 key: %v\n%s", err, out)
		}
		out, err = cosign(t, "sign-blob", "--key", "imported.key", "--tlog-upload=false", "-y",
			"--output-signature", "by-cosign.sig", "index.json")
		if err != nil {
			t.Fatalf("cosign sign-blob: %v\n%s", err, out)
		}
		bySig, _ := os.ReadFile(filepath.Join(dir, "by-cosign.sig"))
		v, _ := NewVerifier([]*ecdsa.PublicKey{&key.PublicKey})
		if err := v.VerifyBlob(blob, bySig); err != nil {
			t.Fatalf("cosign sign-blob's signature: %v", err)
		}
	})
}
