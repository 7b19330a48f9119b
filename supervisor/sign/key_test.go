package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func TestKeyRoundTrips(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := MarshalPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pubPEM), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("public key PEM: %s", pubPEM)
	}
	pub, err := ParsePublicKey(pubPEM)
	if err != nil || !pub.Equal(&k.PublicKey) {
		t.Fatalf("ParsePublicKey: %v", err)
	}
	plain, err := MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := MarshalEncryptedPrivateKey(k, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(enc), "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----") {
		t.Fatalf("encrypted key PEM: %.60s", enc)
	}
	cases := []struct {
		name     string
		pem      []byte
		password string
		wantErr  string
	}{
		{"pkcs8", plain, "", ""},
		{"sec1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), "", ""},
		{"encrypted", enc, "pw", ""},
		{"encrypted wrong password", enc, "nope", "wrong password"},
		{"encrypted legacy name", []byte(strings.ReplaceAll(string(enc), "SIGSTORE", "COSIGN")), "pw", ""},
		{"not a key", pubPEM, "", "not a key format"},
		{"garbage", []byte("hello"), "", "no PEM block"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParsePrivateKey(c.pem, []byte(c.password))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(k) {
				t.Fatal("parsed key differs")
			}
		})
	}
}

// TestDecryptSecureSystemsLibVector decrypts go-securesystemslib's own test vector
// (encrypted/encrypted_test.go TestDecrypt), the envelope cosign's encrypted keys use.
func TestDecryptSecureSystemsLibVector(t *testing.T) {
	enc := `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}`
	got, err := decrypt([]byte(enc), []byte("supersecret"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "reallyimportant" {
		t.Fatalf("decrypted %q", got)
	}
	bad := strings.Replace(enc, `"N":32768`, `"N":99`, 1)
	if _, err := decrypt([]byte(bad), []byte("supersecret")); err == nil || !strings.Contains(err.Error(), "unsupported scrypt parameters") {
		t.Fatalf("odd parameters: err = %v", err)
	}
}

func TestOtherCurvesRefused(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if _, err := ParsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err == nil || !strings.Contains(err.Error(), "P-384") {
		t.Fatalf("P-384 public key: err = %v", err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	if _, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), nil); err == nil {
		t.Fatal("P-384 private key accepted")
	}
}

func TestBlob(t *testing.T) {
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	s := NewSigner(k)
	v, err := NewVerifier([]*ecdsa.PublicKey{&k.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte(`{"releases":[]}`)
	sig, err := s.SignBlob(blob)
	if err != nil {
		t.Fatal(err)
	}
	otherSig, _ := NewSigner(other).SignBlob(blob)
	cases := []struct {
		name    string
		blob    []byte
		sig     []byte
		wantErr bool
	}{
		{"good", blob, sig, false},
		{"good with newline", blob, append(append([]byte{}, sig...), '\n'), false},
		{"changed blob", []byte(`{"releases":[1]}`), sig, true},
		{"other key", blob, otherSig, true},
		{"not base64", blob, []byte("%%%"), true},
		{"empty", blob, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := v.VerifyBlob(c.blob, c.sig)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
		})
	}
	if _, err := NewVerifier(nil); err == nil {
		t.Fatal("a verifier without keys was made")
	}
}
