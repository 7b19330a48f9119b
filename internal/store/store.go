// Package store is ringbridge's Redis layer: one client per service with timeouts that suit a
// health probe and a call in progress, a readiness check that says in words what is wrong, and the
// small primitives several services share: an idempotency marker (Once), a lock for single-flight
// work across replicas (the OAuth refresh), and JSON values with a TTL. Services keep their own
// data structures on Client().
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/config"
)

// Timeouts of every command. Redis answers in well under a millisecond on the same host or network;
// a command that takes seconds means Redis is in trouble, and failing fast lets the caller nack the
// message and retry later rather than hang a consumer.
const (
	dialTimeout  = 2 * time.Second
	readTimeout  = 2 * time.Second
	writeTimeout = 2 * time.Second
	poolTimeout  = 3 * time.Second
)

// Store is a Redis client with ringbridge's primitives. Safe for concurrent use.
type Store struct {
	rdb     *redis.Client
	log     *logrus.Entry
	addr    string
	release *redis.Script
	extend  *redis.Script
}

// New returns a Store for cfg. It checks that Redis answers and logs the outcome, but a Redis that
// is down is not an error here: it may start after this service (compose, an update), the client
// reconnects by itself, and /readyz reports it through Ping meanwhile. A config that cannot work
// (no address) is an error. The password is never logged.
func New(ctx context.Context, cfg config.Redis, logger *logrus.Entry) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("redis config: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr:                  cfg.Address,
		Password:              cfg.Password.Reveal(),
		DB:                    cfg.DB,
		DialTimeout:           dialTimeout,
		DialerRetries:         2,
		ReadTimeout:           readTimeout,
		WriteTimeout:          writeTimeout,
		PoolTimeout:           poolTimeout,
		MaxRetries:            2,
		ContextTimeoutEnabled: true,
		// Plain Redis on the same host; the cluster maintenance handshake only adds a round trip
		// and a warning on servers that do not know it.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	s := &Store{
		rdb:  rdb,
		log:  logger.WithFields(logrus.Fields{"redis": cfg.Address, "redis_db": cfg.DB}),
		addr: cfg.Address,
		// Compare-and-delete / compare-and-expire: only the holder of the token may touch the lock,
		// so a holder whose lock expired cannot release the lock another replica took since.
		release: redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`),
		extend:  redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`),
	}
	if err := s.Ping(ctx); err != nil {
		s.log.WithError(err).Warn("redis does not answer yet; will keep trying")
	} else {
		s.log.Info("redis answers")
	}
	return s, nil
}

// Client is the underlying go-redis client, for the service's own data structures.
func (s *Store) Client() *redis.Client { return s.rdb }

// Addr is the address the store talks to.
func (s *Store) Addr() string { return s.addr }

// Close closes the client's connections.
func (s *Store) Close() error {
	if err := s.rdb.Close(); err != nil {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

// Ping checks that Redis answers, for readiness: health.AddCheck("redis", store.Ping).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Once sets an idempotency marker: first is true for the one caller that set key, false for every
// other until ttl passes. A consumer that gets a message again (at-least-once delivery) sees
// first == false and skips the work. If the work then fails, Delete the key so a retry can do it.
func (s *Store) Once(ctx context.Context, key string, ttl time.Duration) (first bool, err error) {
	if err := checkTTL(ttl); err != nil {
		return false, fmt.Errorf("once %s: %w", key, err)
	}
	first, err = s.rdb.SetNX(ctx, key, time.Now().UTC().Format(time.RFC3339Nano), ttl).Result()
	if err != nil {
		return false, s.wrap("once "+key, err)
	}
	return first, nil
}

// Delete removes keys; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
		return s.wrap("delete "+strings.Join(keys, " "), err)
	}
	return nil
}

// SetJSON stores v as JSON under key; ttl 0 keeps it until deleted.
func (s *Store) SetJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	if ttl < 0 {
		return fmt.Errorf("set %s: ttl %s is negative: use 0 for no expiry", key, ttl)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("set %s: encoding %T as JSON: %w", key, v, err)
	}
	if err := s.rdb.Set(ctx, key, b, ttl).Err(); err != nil {
		return s.wrap("set "+key, err)
	}
	return nil
}

// GetJSON reads key into v; found is false (and v untouched) when the key does not exist.
func (s *Store) GetJSON(ctx context.Context, key string, v any) (found bool, err error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, s.wrap("get "+key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("get %s: the value is not the JSON of a %T: %w", key, v, err)
	}
	return true, nil
}

// ErrNotHeld is returned by Release and Extend when the lock is no longer this holder's: its TTL
// ran out (and perhaps another replica took it), or it was released already.
var ErrNotHeld = errors.New("lock not held: it expired or was released")

// Lock is a held lock. Its holder must finish (or Extend) before the TTL runs out: past it,
// another replica may take the lock.
type Lock struct {
	s     *Store
	key   string
	token string
}

// Key is the locked key.
func (l *Lock) Key() string { return l.key }

// TryLock takes the lock at key for ttl if nobody holds it. ok is false when another holder has it.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (lock *Lock, ok bool, err error) {
	if err := checkTTL(ttl); err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", key, err)
	}
	token, err := newToken()
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", key, err)
	}
	ok, err = s.rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil {
		return nil, false, s.wrap("lock "+key, err)
	}
	if !ok {
		return nil, false, nil
	}
	return &Lock{s: s, key: key, token: token}, true, nil
}

// Lock waits until it holds the lock at key (or ctx ends). The waiter polls with a growing pause,
// enough for the rare contention of an OAuth refresh.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	pause := 10 * time.Millisecond
	for {
		l, ok, err := s.TryLock(ctx, key, ttl)
		if err != nil {
			return nil, err
		}
		if ok {
			return l, nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for lock %s: %w", key, ctx.Err())
		case <-t.C:
		}
		pause = min(pause*2, 250*time.Millisecond)
	}
}

// Release frees the lock if this holder still has it; otherwise ErrNotHeld, and the lock of
// whoever holds it now is left alone.
func (l *Lock) Release(ctx context.Context) error {
	n, err := l.s.release.Run(ctx, l.s.rdb, []string{l.key}, l.token).Int64()
	if err != nil {
		return l.s.wrap("unlock "+l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("unlock %s: %w", l.key, ErrNotHeld)
	}
	return nil
}

// Extend resets the lock's TTL to ttl if this holder still has it; otherwise ErrNotHeld.
func (l *Lock) Extend(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return fmt.Errorf("extend lock %s: %w", l.key, err)
	}
	n, err := l.s.extend.Run(ctx, l.s.rdb, []string{l.key}, l.token, ttl.Milliseconds()).Int64()
	if err != nil {
		return l.s.wrap("extend lock "+l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("extend lock %s: %w", l.key, ErrNotHeld)
	}
	return nil
}

// checkTTL: a marker or lock without expiry would outlive a crashed holder for ever.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("ttl %s is too short: give at least 1ms (a lock or marker must expire)", ttl)
	}
	return nil
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a lock token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// wrap says in words what a Redis error means for the operator, keeping the original for errors.Is.
func (s *Store) wrap(op string, err error) error {
	return fmt.Errorf("redis at %s: %s: %s: %w", s.addr, op, Describe(err), err)
}

// Describe turns a Redis client error into what an operator should know and do.
func Describe(err error) string {
	msg := err.Error()
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "cannot connect, nothing listens there (start Redis, or fix redis.address)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time (Redis overloaded, or a firewall drops the packets?)"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, redis.ErrClosed):
		return "the client is closed (the service is stopping)"
	case strings.Contains(msg, "no such host"):
		return "the host name does not resolve (fix redis.address)"
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "invalid password"):
		return "the password was rejected (fix redis.password, or Redis's requirepass)"
	case strings.HasPrefix(msg, "LOADING"):
		return "Redis is loading its data after a restart; it answers when done"
	case strings.HasPrefix(msg, "READONLY"):
		return "this Redis is a read-only replica (point redis.address at the primary)"
	case strings.HasPrefix(msg, "OOM"):
		return "Redis is out of memory (raise maxmemory, or free some)"
	case strings.Contains(msg, "DB index is out of range"):
		return "redis.db is higher than the databases Redis has (16 by default)"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), strings.Contains(msg, "EOF"):
		return "the connection dropped (Redis restarted or closed it)"
	}
	return "command failed"
}

// ClientLogger adapts a service logger for go-redis's own messages (pool dial failures and the
// like), which otherwise go to stderr as plain text between the JSON lines. go-redis keeps one
// logger per process, so a service's main sets it once: redis.SetLogger(store.ClientLogger(log)).
func ClientLogger(log *logrus.Entry) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return clientLogger{log.WithField("component", "go-redis")}
}

type clientLogger struct{ log *logrus.Entry }

func (c clientLogger) Printf(_ context.Context, format string, v ...any) {
	c.log.Warn(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}
