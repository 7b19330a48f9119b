package retry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
)

func TestHelps(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("bad signature"), false},
		{"marked", Temporary(errors.New("503")), true},
		{"marked and wrapped", fmt.Errorf("pulling: %w", Temporary(errors.New("503"))), true},
		{"connection refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"deadline", context.DeadlineExceeded, true},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), false},
		{"marked but cancelled", Temporary(context.Canceled), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Helps(c.err); got != c.want {
				t.Fatalf("Helps(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
	if Temporary(nil) != nil {
		t.Fatal("Temporary(nil) != nil")
	}
}
