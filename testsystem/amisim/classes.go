package amisim

import (
	"strconv"
	"strings"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// Event classes as bits, in the order of Asterisk's perms[] (main/manager.c).
const (
	classSystem uint32 = 1 << iota
	classCall
	classLog
	classVerbose
	classCommand
	classAgent
	classUser
	classConfig
	classDTMF
	classReporting
	classCDR
	classDialplan
	classOriginate
	classAGI
	classCC
	classAOC
	classTest
	classSecurity
	classMessage

	classAll = classMessage<<1 - 1
)

// classBit maps a class name (case-insensitive) to its bit; 0 for unknown names, which Asterisk
// ignores too.
func classBit(name string) uint32 {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "system":
		return classSystem
	case "call":
		return classCall
	case "log":
		return classLog
	case "verbose":
		return classVerbose
	case "command":
		return classCommand
	case "agent":
		return classAgent
	case "user":
		return classUser
	case "config":
		return classConfig
	case "dtmf":
		return classDTMF
	case "reporting":
		return classReporting
	case "cdr":
		return classCDR
	case "dialplan":
		return classDialplan
	case "originate":
		return classOriginate
	case "agi":
		return classAGI
	case "cc":
		return classCC
	case "aoc":
		return classAOC
	case "test":
		return classTest
	case "security":
		return classSecurity
	case "message":
		return classMessage
	case "all":
		return classAll
	}
	return 0
}

// classList ORs the bits of comma-separated class names.
func classList(list []string) uint32 {
	var m uint32
	for _, s := range list {
		for _, name := range strings.Split(s, ",") {
			m |= classBit(name)
		}
	}
	return m
}

// isTrue and isFalse are Asterisk's ast_true/ast_false.
func isTrue(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "true", "y", "t", "1", "on":
		return true
	}
	return false
}

func isFalse(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "no", "false", "n", "f", "0", "off":
		return true
	}
	return false
}

// eventMask is Asterisk's strings_to_mask: digits as a number, off → 0, on → all, else the class
// list; -1 for an empty mask.
func eventMask(s string) int64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return -1
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return int64(n)
	}
	if isFalse(s) {
		return 0
	}
	if isTrue(s) {
		return int64(classAll)
	}
	return int64(classList([]string{s}))
}

// eventCategory is the class of an event from its Privilege header ("call,all" → call); 0 when
// it has none (then every session with events on gets it).
func eventCategory(m *ami.Message) uint32 {
	p, ok := exact(m, "Privilege")
	if !ok {
		return 0
	}
	var cat uint32
	for _, name := range strings.Split(p, ",") {
		if b := classBit(name); b != classAll {
			cat |= b
		}
	}
	return cat
}
