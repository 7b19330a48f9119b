// Package sign makes and checks cosign-compatible key-based signatures, with the standard library's
// ECDSA and go-containerregistry only (no cosign or sigstore dependency):
//
//   - keys: ECDSA P-256 in cosign's PEM formats: "PUBLIC KEY" (cosign.pub), its encrypted
//     "ENCRYPTED SIGSTORE PRIVATE KEY" (cosign.key), and plain PKCS#8 / SEC 1 keys;
//   - images: the simple-signing payload stored at the tag sha256-<hex>.sig of the image's
//     repository, one manifest layer per signature with the base64 ASN.1 signature in the layer
//     annotation dev.cosignproject.cosign/signature (cosign v2's default format, which cosign v3
//     still verifies): an image signed with "cosign sign --key" verifies here, and an image signed
//     here passes "cosign verify --key";
//   - blobs (the release index): a base64 signature over the bytes, as "cosign sign-blob --key"
//     writes it, so "cosign verify-blob" checks it too.
//
// Keyless signatures (Fulcio certificates, Rekor bundles) and cosign v3's referrer bundles are not
// read: an install trusts one public key, which works offline.
package sign
