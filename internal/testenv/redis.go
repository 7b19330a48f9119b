package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ringbridge/ringbridge/internal/config"
)

// DefaultRedisAddr is the Redis of the test machine, as .ci/run starts it.
const DefaultRedisAddr = "127.0.0.1:6379"

// Leases of test databases live in database 0 under this prefix; tests get databases 1 and up.
const redisLeasePrefix = "ringbridge:testenv:db:"

// redisLeaseTTL outlives the longest test run (go test -timeout 25m), so a lease is never lost under
// a running test, and frees the database of a test process that was killed.
const redisLeaseTTL = 30 * time.Minute

// redisWait is how long RedisDB waits for a free database while other test processes hold all.
const redisWait = 2 * time.Minute

// RedisAddr returns the test Redis's host:port: $RINGBRIDGE_REDIS_ADDR or DefaultRedisAddr. It
// fails the test when Redis does not answer PING.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("RINGBRIDGE_REDIS_ADDR")
	if addr == "" {
		addr = DefaultRedisAddr
	}
	c := newRedisClient(addr, 0)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis is not reachable at %s (%v): run `bash .ci/run` or start redis-server", addr, err)
	}
	return addr
}

// RedisDB gives the test a Redis database of its own, empty, and empties and frees it when the test
// ends: go test runs packages in parallel processes, and each test must see only its own keys. It
// returns the config to hand to the code under test (store.New). Databases are leased in database
// 0 so parallel test processes never share one; a lease left by a killed test process on this
// machine is taken back at once, one from another machine when it expires.
func RedisDB(t testing.TB) config.Redis {
	t.Helper()
	addr := RedisAddr(t)
	admin := newRedisClient(addr, 0)
	t.Cleanup(func() { _ = admin.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), redisWait)
	defer cancel()
	count := redisDatabases(ctx, admin)
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), t.Name())

	for {
		for db := 1; db < count; db++ {
			key := redisLeasePrefix + strconv.Itoa(db)
			ok, err := admin.SetNX(ctx, key, owner, redisLeaseTTL).Result()
			if err != nil {
				t.Fatalf("leasing a Redis database at %s: %v", addr, err)
			}
			if !ok && !takeOverDeadLease(ctx, admin, key, host, owner) {
				continue
			}
			cfg := config.Redis{Address: addr, DB: db}
			flushRedisDB(t, cfg)
			t.Cleanup(func() {
				flushRedisDB(t, cfg)
				cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer ccancel()
				// Free the lease only if it is still ours.
				_ = admin.Eval(cctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`, []string{key}, owner).Err()
			})
			return cfg
		}
		select {
		case <-ctx.Done():
			t.Fatalf("all %d test databases of Redis at %s stayed leased by other tests for %s (see the keys %s* in database 0); start Redis with more databases (--databases 64, as .ci/run does)", count-1, addr, redisWait, redisLeasePrefix)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// takeOverDeadLease takes a lease whose owner was a process on this machine that no longer exists.
func takeOverDeadLease(ctx context.Context, c *redis.Client, key, host, owner string) bool {
	cur, err := c.Get(ctx, key).Result()
	if err != nil {
		return false
	}
	parts := strings.SplitN(cur, ":", 3)
	if len(parts) < 2 || parts[0] != host {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	n, err := c.Eval(ctx, `if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) return 1 else return 0 end`,
		[]string{key}, cur, owner, redisLeaseTTL.Milliseconds()).Int()
	return err == nil && n == 1
}

// redisDatabases is how many databases the server has (16 unless configured otherwise).
func redisDatabases(ctx context.Context, c *redis.Client) int {
	v, err := c.ConfigGet(ctx, "databases").Result()
	if err == nil {
		if n, err := strconv.Atoi(v["databases"]); err == nil && n > 1 {
			return n
		}
	}
	return 16
}

func flushRedisDB(t testing.TB, cfg config.Redis) {
	t.Helper()
	c := newRedisClient(cfg.Address, cfg.DB)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Errorf("emptying Redis database %d at %s: %v", cfg.DB, cfg.Address, err)
	}
}

func newRedisClient(addr string, db int) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                     addr,
		DB:                       db,
		DialTimeout:              2 * time.Second,
		DialerRetries:            1,
		MaxRetries:               1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
}
