package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/ringbridge/ringbridge/internal/config"
)

func TestRedisDBIsolatedAndCleaned(t *testing.T) {
	var first, second config.Redis
	t.Run("lease", func(t *testing.T) {
		first = RedisDB(t)
		second = RedisDB(t)
		if first.DB == second.DB || first.DB == 0 || second.DB == 0 {
			t.Fatalf("databases %d and %d: want two different ones, not 0", first.DB, second.DB)
		}
		c := newRedisClient(first.Address, first.DB)
		defer c.Close()
		if err := c.Set(context.Background(), "left-behind", "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	// The subtest has ended: its databases must be empty and free again.
	admin := newRedisClient(first.Address, 0)
	defer admin.Close()
	ctx := context.Background()
	for _, cfg := range []config.Redis{first, second} {
		c := newRedisClient(cfg.Address, cfg.DB)
		n, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil || n != 0 {
			t.Errorf("database %d holds %d keys after the test (%v)", cfg.DB, n, err)
		}
		if v, _ := admin.Get(ctx, fmt.Sprintf("%s%d", redisLeasePrefix, cfg.DB)).Result(); strings.Contains(v, t.Name()) {
			t.Errorf("database %d still leased: %s", cfg.DB, v)
		}
	}
}

func TestRedisDBTakesOverDeadLease(t *testing.T) {
	addr := RedisAddr(t)
	admin := newRedisClient(addr, 0)
	defer admin.Close()
	ctx := context.Background()
	// A key of its own, so the real leases of tests running beside this one are never touched.
	key := fmt.Sprintf("%stakeover-test-%d", redisLeasePrefix, os.Getpid())
	defer admin.Del(ctx, key)
	host := "testhost-not-real"
	cases := []struct {
		name    string
		holder  string
		askHost string
		want    bool
	}{
		{name: "another machine's lease is kept", holder: host + ":999999999:Other", askHost: "another-host", want: false},
		{name: "a live process's lease is kept", holder: fmt.Sprintf("%s:%d:Live", host, os.Getppid()), askHost: host, want: false},
		{name: "a dead process's lease is taken", holder: host + ":999999999:Dead", askHost: host, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := admin.Set(ctx, key, tc.holder, redisLeaseTTL).Err(); err != nil {
				t.Fatal(err)
			}
			got := takeOverDeadLease(ctx, admin, key, tc.askHost, tc.askHost+":1:Me")
			if got != tc.want {
				t.Fatalf("took over: %v, want %v", got, tc.want)
			}
			now, _ := admin.Get(ctx, key).Result()
			if tc.want != (now != tc.holder) {
				t.Fatalf("lease now %q", now)
			}
		})
	}
}

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestRedisAddrUnreachableFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	t.Setenv("RINGBRIDGE_REDIS_ADDR", addr)

	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		RedisAddr(f)
	}()
	<-done
	want := "Redis is not reachable at " + addr
	if !strings.Contains(f.msg, want) || !strings.Contains(f.msg, "run `bash .ci/run` or start redis-server") {
		t.Fatalf("Fatalf message = %q", f.msg)
	}
}
