package store

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/internal/testenv"
)

func newStore(t *testing.T, cfg config.Redis) (*Store, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	s, err := New(context.Background(), cfg, l.WithField("service", "test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, &logs
}

func TestPing(t *testing.T) {
	s, logs := newStore(t, testenv.RedisDB(t))
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "redis answers") {
		t.Fatalf("no startup line:\n%s", logs)
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	cfg := testenv.RedisDB(t)
	cfg.Password = "pw-that-must-not-show"
	s, logs := newStore(t, cfg)
	// The test Redis has no password: AUTH fails, and the failure must not show it either.
	err := s.Ping(context.Background())
	for _, text := range []string{logs.String(), errString(err)} {
		if strings.Contains(text, "pw-that-must-not-show") {
			t.Fatalf("password shown: %s", text)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestOnce(t *testing.T) {
	s, _ := newStore(t, testenv.RedisDB(t))
	ctx := context.Background()

	t.Run("first caller only", func(t *testing.T) {
		var firsts atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				first, err := s.Once(ctx, "call:1:ended", time.Minute)
				if err != nil {
					t.Error(err)
				}
				if first {
					firsts.Add(1)
				}
			}()
		}
		wg.Wait()
		if firsts.Load() != 1 {
			t.Fatalf("%d callers were first, want 1", firsts.Load())
		}
	})
	t.Run("expires", func(t *testing.T) {
		if first, _ := s.Once(ctx, "short", 50*time.Millisecond); !first {
			t.Fatal("not first")
		}
		time.Sleep(120 * time.Millisecond)
		if first, _ := s.Once(ctx, "short", time.Minute); !first {
			t.Fatal("marker did not expire")
		}
	})
	t.Run("delete lets a retry run", func(t *testing.T) {
		if first, _ := s.Once(ctx, "retry", time.Minute); !first {
			t.Fatal("not first")
		}
		if err := s.Delete(ctx, "retry"); err != nil {
			t.Fatal(err)
		}
		if first, _ := s.Once(ctx, "retry", time.Minute); !first {
			t.Fatal("marker still there after Delete")
		}
	})
	t.Run("no ttl refused", func(t *testing.T) {
		if _, err := s.Once(ctx, "k", 0); err == nil || !strings.Contains(err.Error(), "must expire") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestJSON(t *testing.T) {
	s, _ := newStore(t, testenv.RedisDB(t))
	ctx := context.Background()
	type token struct {
		Access  string    `json:"access"`
		Expires time.Time `json:"expires"`
	}
	in := token{Access: "a1", Expires: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}

	cases := []struct {
		name      string
		setup     func(t *testing.T)
		key       string
		wantFound bool
		wantErr   string
	}{
		{name: "round trip", key: "tok", wantFound: true, setup: func(t *testing.T) {
			if err := s.SetJSON(ctx, "tok", in, time.Minute); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "missing key", key: "nothing", wantFound: false},
		{name: "not JSON", key: "raw", wantFound: true, wantErr: "is not the JSON of a *store.token", setup: func(t *testing.T) {
			s.Client().Set(ctx, "raw", "{broken", 0)
		}},
		{name: "expires", key: "brief", wantFound: false, setup: func(t *testing.T) {
			if err := s.SetJSON(ctx, "brief", in, 30*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			time.Sleep(80 * time.Millisecond)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			var out token
			found, err := s.GetJSON(ctx, tc.key, &out)
			if found != tc.wantFound {
				t.Fatalf("found %v, want %v (err %v)", found, tc.wantFound, err)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if found && out != in {
				t.Fatalf("got %+v, want %+v", out, in)
			}
		})
	}
	t.Run("ttl zero keeps the key", func(t *testing.T) {
		if err := s.SetJSON(ctx, "forever", 1, 0); err != nil {
			t.Fatal(err)
		}
		if ttl := s.Client().TTL(ctx, "forever").Val(); ttl != -1 {
			t.Fatalf("ttl %v, want none", ttl)
		}
	})
	t.Run("unencodable value", func(t *testing.T) {
		if err := s.SetJSON(ctx, "bad", func() {}, 0); err == nil || !strings.Contains(err.Error(), "encoding func() as JSON") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestLockOnlyOneHolder(t *testing.T) {
	s, _ := newStore(t, testenv.RedisDB(t))
	ctx := context.Background()
	var holders, maxHolders, acquired atomic.Int32
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				l, err := s.Lock(ctx, "oauth:refresh", 5*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				acquired.Add(1)
				n := holders.Add(1)
				if n > maxHolders.Load() {
					maxHolders.Store(n)
				}
				time.Sleep(time.Millisecond)
				holders.Add(-1)
				if err := l.Release(ctx); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if maxHolders.Load() != 1 || acquired.Load() != 40 {
		t.Fatalf("at most %d holders at once (want 1), %d acquisitions (want 40)", maxHolders.Load(), acquired.Load())
	}
}

func TestLock(t *testing.T) {
	s, _ := newStore(t, testenv.RedisDB(t))
	ctx := context.Background()

	t.Run("try while held", func(t *testing.T) {
		a, ok, err := s.TryLock(ctx, "k1", time.Minute)
		if err != nil || !ok {
			t.Fatalf("first TryLock: %v %v", ok, err)
		}
		if _, ok, err := s.TryLock(ctx, "k1", time.Minute); ok || err != nil {
			t.Fatalf("second TryLock got it (%v) or failed (%v)", ok, err)
		}
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.TryLock(ctx, "k1", time.Minute); !ok {
			t.Fatal("lock not free after Release")
		}
	})
	t.Run("expiry frees it; the old holder cannot release the new one", func(t *testing.T) {
		a, ok, _ := s.TryLock(ctx, "k2", 100*time.Millisecond)
		if !ok {
			t.Fatal("not acquired")
		}
		time.Sleep(200 * time.Millisecond)
		b, ok, _ := s.TryLock(ctx, "k2", time.Minute)
		if !ok {
			t.Fatal("lock did not expire")
		}
		if err := a.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("release by a non-owner: %v, want ErrNotHeld", err)
		}
		if err := a.Extend(ctx, time.Minute); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("extend by a non-owner: %v, want ErrNotHeld", err)
		}
		if _, ok, _ := s.TryLock(ctx, "k2", time.Minute); ok {
			t.Fatal("non-owner's release freed the new holder's lock")
		}
		if err := b.Release(ctx); err != nil {
			t.Fatalf("owner's release: %v", err)
		}
	})
	t.Run("release twice", func(t *testing.T) {
		a, _, _ := s.TryLock(ctx, "k3", time.Minute)
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx); !errors.Is(err, ErrNotHeld) {
			t.Fatalf("second release: %v", err)
		}
	})
	t.Run("extend keeps it", func(t *testing.T) {
		a, _, _ := s.TryLock(ctx, "k4", 100*time.Millisecond)
		if err := a.Extend(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if _, ok, _ := s.TryLock(ctx, "k4", time.Minute); ok {
			t.Fatal("extended lock expired")
		}
	})
	t.Run("waiting ends with ctx", func(t *testing.T) {
		if _, ok, _ := s.TryLock(ctx, "k5", time.Minute); !ok {
			t.Fatal("not acquired")
		}
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := s.Lock(wctx, "k5", time.Minute)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for lock k5") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("waiter gets it after release", func(t *testing.T) {
		a, _, _ := s.TryLock(ctx, "k6", time.Minute)
		go func() {
			time.Sleep(50 * time.Millisecond)
			_ = a.Release(ctx)
		}()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := s.Lock(wctx, "k6", time.Minute); err != nil {
			t.Fatal(err)
		}
	})
}

// closedAddr is a local port with nothing listening.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRedisDown(t *testing.T) {
	addr := closedAddr(t)
	s, logs := newStore(t, config.Redis{Address: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !strings.Contains(logs.String(), "redis does not answer yet") {
		t.Errorf("New did not warn:\n%s", logs)
	}
	ops := []struct {
		name string
		run  func() error
	}{
		{"ping", func() error { return s.Ping(ctx) }},
		{"once", func() error { _, err := s.Once(ctx, "k", time.Minute); return err }},
		{"trylock", func() error { _, _, err := s.TryLock(ctx, "k", time.Minute); return err }},
		{"lock", func() error { _, err := s.Lock(ctx, "k", time.Minute); return err }},
		{"setjson", func() error { return s.SetJSON(ctx, "k", 1, 0) }},
		{"getjson", func() error { var v int; _, err := s.GetJSON(ctx, "k", &v); return err }},
		{"delete", func() error { return s.Delete(ctx, "k") }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			start := time.Now()
			err := op.run()
			if err == nil {
				t.Fatal("no error with Redis down")
			}
			want := "redis at " + addr + ": "
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "cannot connect, nothing listens there (start Redis, or fix redis.address)") {
				t.Fatalf("error not in words: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %s to fail", d)
			}
		})
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	l := logrus.New()
	l.SetOutput(&bytes.Buffer{})
	_, err := New(context.Background(), config.Redis{Address: "redis"}, l.WithField("service", "test"))
	if err == nil || !strings.Contains(err.Error(), `redis.address: "redis" has no port`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDescribe(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"wrong password", errors.New("WRONGPASS invalid username-password pair or user is disabled."), "the password was rejected"},
		{"no auth", errors.New("NOAUTH Authentication required."), "the password was rejected"},
		{"loading", errors.New("LOADING Redis is loading the dataset in memory"), "loading its data"},
		{"readonly", errors.New("READONLY You can't write against a read only replica."), "read-only replica"},
		{"timeout", context.DeadlineExceeded, "no answer in time"},
		{"db range", errors.New("ERR DB index is out of range"), "redis.db is higher"},
		{"unknown", errors.New("ERR something"), "command failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Describe(tc.err); !strings.Contains(got, tc.want) {
				t.Fatalf("Describe = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientLogger(t *testing.T) {
	var logs bytes.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	l.SetFormatter(&logrus.JSONFormatter{})
	ClientLogger(l.WithField("service", "test")).Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts", 2)
	out := logs.String()
	if !strings.Contains(out, `"msg":"connection pool: failed to dial after 2 attempts"`) || !strings.Contains(out, `"component":"go-redis"`) {
		t.Fatalf("line = %s", out)
	}
}
