// Package testenv gives tests the real services they run against (RabbitMQ, Redis) on the test
// machine. A missing service fails the test with what to do about it; it never skips, because a
// skipped integration test is a test that silently stopped running.
package testenv
