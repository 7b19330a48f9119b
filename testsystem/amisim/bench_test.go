package amisim

import "testing"

func BenchmarkFresh(b *testing.B) {
	rec, err := LoadRecording("testdata/attended-transfer.ami")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		rec.Fresh(i + 1)
	}
}

func BenchmarkRetime(b *testing.B) {
	rec, err := LoadRecording("testdata/attended-transfer.ami")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		rec.Retime(rec.Start().Add(1e9))
	}
}
