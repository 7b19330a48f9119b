package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is under every error saying a signature exists but does not hold: wrong key, changed
// bytes, or a payload about another image. Retrying never helps.
var ErrInvalid = errors.New("signature does not verify")

// ErrUnsigned is under the error for an image that has no signature at all.
var ErrUnsigned = errors.New("image is not signed")

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// signDigest signs sha256(payload) with ASN.1 DER encoding, cosign's signature scheme.
func signDigest(key *ecdsa.PrivateKey, payload []byte) ([]byte, error) {
	sig, err := ecdsa.SignASN1(rand.Reader, key, sha256Sum(payload))
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return sig, nil
}

// decodeSignature reads a signature as cosign stores it (base64 of the DER bytes), tolerating the
// newline a file written by "cosign sign-blob --output-signature" ends with.
func decodeSignature(sig []byte) ([]byte, error) {
	s := strings.TrimSpace(string(sig))
	if s == "" {
		return nil, errors.New("the signature is empty")
	}
	der, err := base64Std.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the signature is not base64: %w", err)
	}
	return der, nil
}

// verifyWithAny returns the fingerprint of the first key under which der is a valid signature of
// sha256(payload), or "" when none is.
func verifyWithAny(keys []*ecdsa.PublicKey, payload, der []byte) string {
	h := sha256Sum(payload)
	for _, k := range keys {
		if ecdsa.VerifyASN1(k, h, der) {
			return Fingerprint(k)
		}
	}
	return ""
}

// SignBlob returns the base64 signature of blob, the text "cosign sign-blob --key" prints, so
// "cosign verify-blob --key cosign.pub --signature FILE.sig FILE" accepts it.
func (s *Signer) SignBlob(blob []byte) ([]byte, error) {
	der, err := signDigest(s.key, blob)
	if err != nil {
		return nil, err
	}
	return []byte(base64Std.EncodeToString(der)), nil
}

// VerifyBlob checks a base64 signature of blob (cosign sign-blob's output) against the trusted
// keys. The error wraps ErrInvalid when the signature does not hold.
func (v *Verifier) VerifyBlob(blob, sig []byte) error {
	der, err := decodeSignature(sig)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if verifyWithAny(v.keys, blob, der) == "" {
		return fmt.Errorf("%w with the trusted key %s: the signed file was changed, or signed with another key",
			ErrInvalid, v.fingerprints())
	}
	return nil
}

func (v *Verifier) fingerprints() string {
	var b bytes.Buffer
	for i, k := range v.keys {
		if i > 0 {
			b.WriteString(" or ")
		}
		b.WriteString(Fingerprint(k))
	}
	return b.String()
}
