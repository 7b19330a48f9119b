package bundle

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnpackRefusesEscapes(t *testing.T) {
	cases := []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"parent path", tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}, "outside the bundle"},
		{"nested parent path", tar.Header{Name: "oci/../../evil", Typeflag: tar.TypeReg, Mode: 0o644}, "outside the bundle"},
		{"symlink", tar.Header{Name: "oci/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "not a file or directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&c.hdr)
			tw.Close()
			dir := t.TempDir()
			file := filepath.Join(dir, "b.tar")
			os.WriteFile(file, buf.Bytes(), 0o600)
			out := filepath.Join(dir, "out")
			if err := unpack(file, out); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "evil")); err == nil {
				t.Fatal("a file was written outside the bundle")
			}
		})
	}
}
