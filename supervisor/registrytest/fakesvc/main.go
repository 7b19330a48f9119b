// Command fakesvc stands in for a ringbridge service in the supervisor's tests: a static binary
// small enough to build into a FROM-scratch image in a second, with the subcommands the supervisor
// drives (run, healthcheck, migrate-config, version). How it behaves comes from its environment,
// baked into each test image:
//
//	FAKESVC_MODE     healthy (default): healthy after FAKESVC_DELAY; unhealthy: runs, never healthy;
//	                 crash: exits 3 after FAKESVC_DELAY
//	FAKESVC_DELAY    a Go duration, default 0
//	FAKESVC_VERSION  what "version" prints and what "run" appends to /data/starts
//	FAKESVC_MIGRATE  what "migrate-config --in-place FILE" appends to FILE (empty: nothing to do;
//	                 "fail": exit 1)
//	FAKESVC_SAY      a line "run" prints at start (a test makes a service log a secret)
//	FAKESVC_CRASH_AFTER  in mode healthy: exit 3 this long after becoming healthy (a crash loop
//	                 under a restart policy)
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const healthyFile = "/tmp/healthy"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fakesvc run|healthcheck|migrate-config|version")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run":
		os.Exit(run())
	case "healthcheck":
		if _, err := os.Stat(healthyFile); err != nil {
			fmt.Println("not healthy yet")
			os.Exit(1)
		}
		fmt.Println("ok")
	case "migrate-config":
		os.Exit(migrate(os.Args[2:]))
	case "version":
		fmt.Println(os.Getenv("FAKESVC_VERSION"))
	default:
		fmt.Fprintf(os.Stderr, "fakesvc: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func run() int {
	delay, _ := time.ParseDuration(os.Getenv("FAKESVC_DELAY"))
	mode := os.Getenv("FAKESVC_MODE")
	fmt.Printf("fakesvc %s starting in mode %q\n", os.Getenv("FAKESVC_VERSION"), mode)
	if say := os.Getenv("FAKESVC_SAY"); say != "" {
		fmt.Println(say)
	}
	if f, err := os.OpenFile("/data/starts", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		fmt.Fprintln(f, os.Getenv("FAKESVC_VERSION"))
		f.Close()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	select {
	case <-time.After(delay):
	case <-stop:
		return 0
	}
	switch mode {
	case "crash":
		fmt.Println("fakesvc crashing as asked")
		return 3
	case "unhealthy":
		fmt.Println("fakesvc running, never healthy")
	default:
		if err := os.WriteFile(healthyFile, []byte("ok"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("fakesvc healthy")
		if after, err := time.ParseDuration(os.Getenv("FAKESVC_CRASH_AFTER")); err == nil && after > 0 {
			select {
			case <-time.After(after):
				fmt.Println("fakesvc crashing after being healthy")
				os.Remove(healthyFile)
				return 3
			case <-stop:
				return 0
			}
		}
	}
	<-stop
	fmt.Println("fakesvc stopping")
	return 0
}

func migrate(args []string) int {
	if len(args) != 2 || args[0] != "--in-place" {
		fmt.Fprintln(os.Stderr, "usage: fakesvc migrate-config --in-place FILE")
		return 2
	}
	what := os.Getenv("FAKESVC_MIGRATE")
	switch what {
	case "":
		fmt.Println("config is current")
		return 0
	case "fail":
		fmt.Fprintln(os.Stderr, "fakesvc: migration failed as asked")
		return 1
	}
	f, err := os.OpenFile(args[1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, what); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("migrated")
	return 0
}
