package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

// PEM block types, as cosign writes and reads them (sigstore/cosign pkg/cosign/keys.go).
const (
	pemPublicKey = "PUBLIC KEY"
	// pemPrivateKey is a plain PKCS#8 key; cosign imports it (cosign import-key-pair) but never
	// writes one, because it is unencrypted.
	pemPrivateKey   = "PRIVATE KEY"
	pemECPrivateKey = "EC PRIVATE KEY"
	// pemEncrypted is cosign generate-key-pair's format: PKCS#8 sealed with scrypt + NaCl
	// secretbox in go-securesystemslib's JSON envelope. The older name is still read by cosign.
	pemEncrypted       = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemEncryptedCosign = "ENCRYPTED COSIGN PRIVATE KEY"
)

// GenerateKey returns a new ECDSA P-256 key: cosign's default key type, and the only one
// ringbridge signs with.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating an ECDSA P-256 key: %w", err)
	}
	return k, nil
}

// MarshalPublicKey returns pub as cosign.pub holds it: a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublicKey, Bytes: der}), nil
}

// ParsePublicKey reads a "PUBLIC KEY" PEM (cosign.pub) holding an ECDSA P-256 key. Other key types
// are refused rather than half-supported: every signature ringbridge checks is ECDSA P-256.
func ParsePublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("public key: no PEM block found: expected the contents of cosign.pub (-----BEGIN PUBLIC KEY-----)")
	}
	if block.Type != pemPublicKey {
		return nil, fmt.Errorf("public key: PEM block is %q, want %q (cosign.pub)", block.Type, pemPublicKey)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T is not supported: ringbridge verifies ECDSA P-256 keys (cosign generate-key-pair)", k)
	}
	if ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("public key: curve %s is not supported: want P-256", ek.Curve.Params().Name)
	}
	return ek, nil
}

// MarshalPrivateKey returns k as an unencrypted PKCS#8 "PRIVATE KEY" PEM. Keep it where only the
// release pipeline reads it; MarshalEncryptedPrivateKey is the format cosign itself writes.
func MarshalPrivateKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// scrypt parameters of go-securesystemslib's "Standard" strength, which cosign uses; decryption
// accepts its three named strengths only, as cosign does.
const (
	scryptN      = 65536
	scryptR      = 8
	scryptP      = 1
	scryptKeyLen = 32
)

var scryptAllowed = map[[3]int]bool{{32768, 8, 1}: true, {65536, 8, 1}: true, {131072, 8, 1}: true}

// envelope is go-securesystemslib's encrypted.data: the JSON inside an encrypted cosign key.
type envelope struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// MarshalEncryptedPrivateKey returns k as cosign generate-key-pair writes it: an "ENCRYPTED
// SIGSTORE PRIVATE KEY" PEM, PKCS#8 sealed under password (COSIGN_PASSWORD), so cosign sign --key
// reads it and so does ParsePrivateKey.
func MarshalEncryptedPrivateKey(k *ecdsa.PrivateKey, password []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	var env envelope
	env.KDF.Name = "scrypt"
	env.KDF.Params.N, env.KDF.Params.R, env.KDF.Params.P = scryptN, scryptR, scryptP
	env.KDF.Salt = make([]byte, 32)
	env.Cipher.Name = "nacl/secretbox"
	env.Cipher.Nonce = make([]byte, 24)
	if _, err := rand.Read(env.KDF.Salt); err != nil {
		return nil, err
	}
	if _, err := rand.Read(env.Cipher.Nonce); err != nil {
		return nil, err
	}
	key, err := scrypt.Key(password, env.KDF.Salt, scryptN, scryptR, scryptP, scryptKeyLen)
	if err != nil {
		return nil, fmt.Errorf("deriving the key-encryption key: %w", err)
	}
	var k32 [32]byte
	var n24 [24]byte
	copy(k32[:], key)
	copy(n24[:], env.Cipher.Nonce)
	env.Ciphertext = secretbox.Seal(nil, der, &n24, &k32)
	body, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncrypted, Bytes: body}), nil
}

// ParsePrivateKey reads an ECDSA P-256 private key in any PEM form cosign reads: its encrypted
// key (password needed), a plain PKCS#8 "PRIVATE KEY" or a SEC 1 "EC PRIVATE KEY". The password is
// ignored for unencrypted keys.
func ParsePrivateKey(pemBytes, password []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("private key: no PEM block found")
	}
	der := block.Bytes
	switch block.Type {
	case pemEncrypted, pemEncryptedCosign:
		var err error
		if der, err = decrypt(block.Bytes, password); err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
	case pemPrivateKey:
	case pemECPrivateKey:
		k, err := x509.ParseECPrivateKey(der)
		if err != nil {
			return nil, fmt.Errorf("private key: %w", err)
		}
		return checkCurve(k)
	default:
		return nil, fmt.Errorf("private key: PEM block %q is not a key format ringbridge reads (want %q, %q or %q)",
			block.Type, pemEncrypted, pemPrivateKey, pemECPrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key: %T is not supported: ringbridge signs with ECDSA P-256", k)
	}
	return checkCurve(ek)
}

func checkCurve(k *ecdsa.PrivateKey) (*ecdsa.PrivateKey, error) {
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("private key: curve %s is not supported: want P-256", k.Curve.Params().Name)
	}
	return k, nil
}

func decrypt(body, password []byte) ([]byte, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("encrypted key envelope: %w", err)
	}
	p := env.KDF.Params
	if env.KDF.Name != "scrypt" || env.Cipher.Name != "nacl/secretbox" {
		return nil, fmt.Errorf("encrypted key uses %s/%s: only scrypt with nacl/secretbox is known", env.KDF.Name, env.Cipher.Name)
	}
	if !scryptAllowed[[3]int{p.N, p.R, p.P}] {
		return nil, fmt.Errorf("encrypted key: unsupported scrypt parameters N=%d r=%d p=%d", p.N, p.R, p.P)
	}
	if len(env.Cipher.Nonce) != 24 {
		return nil, errors.New("encrypted key: nonce is not 24 bytes")
	}
	key, err := scrypt.Key(password, env.KDF.Salt, p.N, p.R, p.P, scryptKeyLen)
	if err != nil {
		return nil, fmt.Errorf("encrypted key: %w", err)
	}
	var k32 [32]byte
	var n24 [24]byte
	copy(k32[:], key)
	copy(n24[:], env.Cipher.Nonce)
	out, ok := secretbox.Open(nil, env.Ciphertext, &n24, &k32)
	if !ok {
		return nil, errors.New("encrypted key: wrong password or damaged key (set the password the key was made with, e.g. COSIGN_PASSWORD)")
	}
	return out, nil
}

// Fingerprint is a short name for a public key in logs and messages: the first 8 bytes of the
// SHA-256 of its DER encoding, as hex. It tells keys apart; it is not a secret.
func Fingerprint(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%x", sha256Sum(der)[:8])
}

// base64Std is the encoding cosign uses for signatures (annotation and sign-blob output).
var base64Std = base64.StdEncoding
