package config

import "os"

// DefaultPath is where a service's container finds the install's config file.
const DefaultPath = "/etc/ringbridge/config.yaml"

// Path is the config file a service binary reads: its --config flag when given, else
// $RINGBRIDGE_CONFIG, else DefaultPath.
func Path(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("RINGBRIDGE_CONFIG"); p != "" {
		return p
	}
	return DefaultPath
}
