package config

import (
	"fmt"
	"io"
	"os"
	"strings"
)

const migrateUsage = `usage: migrate-config [--in-place] [--dry-run] FILE

Brings the config FILE to schema %d, keeping its comments and key order.
  (no flag)    print the migrated YAML to standard output; FILE is not changed
  --in-place   rewrite FILE atomically, keeping the original as FILE.bak
  --dry-run    with --in-place: say what would be done and print the result, change nothing
Exit status: 0 done (or nothing to do), 1 failed, 2 bad usage.
`

// RunMigrateCLI is the migrate-config subcommand every service binary exposes (main calls it with
// os.Args after the subcommand name). It returns the process exit status.
func RunMigrateCLI(args []string, stdout, stderr io.Writer) int {
	var inPlace, dryRun bool
	var files []string
	// Flags may come before or after FILE, so parse by hand rather than with flag (which stops at
	// the first non-flag).
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			files = append(files, args[i+1:]...)
			break
		}
		switch a {
		case "--in-place", "-in-place", "-i":
			inPlace = true
		case "--dry-run", "-dry-run", "-n":
			dryRun = true
		case "-h", "-help", "--help":
			fmt.Fprintf(stdout, migrateUsage, Version)
			return 0
		default:
			if strings.HasPrefix(a, "-") && a != "-" {
				fmt.Fprintf(stderr, "migrate-config: unknown flag %s\n", a)
				fmt.Fprintf(stderr, migrateUsage, Version)
				return 2
			}
			files = append(files, a)
		}
	}
	if len(files) != 1 {
		fmt.Fprintf(stderr, "migrate-config: expected one FILE, got %d\n", len(files))
		fmt.Fprintf(stderr, migrateUsage, Version)
		return 2
	}
	path := files[0]

	raw, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "migrate-config: %v\n", err)
		return 1
	}
	out, from, to, err := Migrate(raw)
	if err != nil {
		fmt.Fprintf(stderr, "migrate-config: %s: %v\n", path, err)
		return 1
	}
	// The result is checked like Load would, as a warning: the migration itself is right even when
	// the file had other problems, and the service will name them again at start.
	if _, err := Parse(out, nil); err != nil {
		fmt.Fprintf(stderr, "migrate-config: warning: %s will not load as it is: %v\n", path, err)
	}

	if !inPlace {
		if _, err := stdout.Write(out); err != nil {
			fmt.Fprintf(stderr, "migrate-config: %v\n", err)
			return 1
		}
		if from == to {
			fmt.Fprintf(stderr, "migrate-config: %s is already at schema %d\n", path, to)
		} else {
			fmt.Fprintf(stderr, "migrate-config: %s: schema %d -> %d (printed; the file is unchanged, use --in-place to rewrite it)\n", path, from, to)
		}
		return 0
	}
	if from == to {
		fmt.Fprintf(stdout, "%s is already at schema %d: nothing to do\n", path, to)
		return 0
	}
	bak := path + ".bak"
	if dryRun {
		fmt.Fprintf(stdout, "would migrate %s from schema %d to %d, keeping the original as %s; the result:\n", path, from, to, bak)
		if _, err := stdout.Write(out); err != nil {
			fmt.Fprintf(stderr, "migrate-config: %v\n", err)
			return 1
		}
		return 0
	}
	// The backup is written (atomically, with the file's mode) before the file is replaced, so
	// there is no moment without a complete copy of the original.
	if err := WriteFileAtomic(bak, raw); err != nil {
		fmt.Fprintf(stderr, "migrate-config: keeping a backup: %v (the file is unchanged)\n", err)
		return 1
	}
	if st, err := os.Stat(path); err == nil {
		_ = os.Chmod(bak, st.Mode().Perm())
	}
	if err := WriteFileAtomic(path, out); err != nil {
		fmt.Fprintf(stderr, "migrate-config: %v (the original is in %s)\n", err, bak)
		return 1
	}
	fmt.Fprintf(stdout, "migrated %s from schema %d to %d; the original is in %s\n", path, from, to, bak)
	return 0
}
