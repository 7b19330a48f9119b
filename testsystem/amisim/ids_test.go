package amisim

import (
	"testing"
	"time"
)

func TestChannelSuffix(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"local ;1", "Local/101@phones-0000002b;1", "0000002b"},
		{"local ;2", "Local/4951234567@from-trunk-00000006;2", "00000006"},
		{"pjsip", "PJSIP/trunk-0000000a", "0000000a"},
		{"sip with digits", "SIP/150010003-0000002f", "0000002f"},
		{"zombie", "Local/101@phones-0000002b;1<ZOMBIE>", "0000002b"},
		{"no suffix", "Local/101@phones", ""},
		{"seven digits", "PJSIP/trunk-000000a", ""},
		{"upper hex is not Asterisk's", "PJSIP/trunk-0000000A", ""},
		{"not a channel", "0000002b", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := channelSuffix(tt.in); got != tt.want {
				t.Fatalf("channelSuffix(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTrailingUniqueid(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "1795634813.4", "1795634813.4"},
		{"system name", "195176c06ab8-1529936170.42", "1529936170.42"},
		{"unknown", "<unknown>", ""},
		{"no sequence", "1795634813.", ""},
		{"no epoch", ".4", ""},
		{"N/A", "N/A", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trailingUniqueid(tt.in); got != tt.want {
				t.Fatalf("trailingUniqueid(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestReplaceUniqueids(t *testing.T) {
	ids := map[string]string{"1795634950.39": "1795634950.10001", "1795634950.3": "X"}
	tests := []struct{ name, in, want string }{
		{"whole value", "1795634950.39", "1795634950.10001"},
		{"inside a file name", "out-20261125-192910-101-1795634950.39.wav", "out-20261125-192910-101-1795634950.10001.wav"},
		{"prefixed", "host-1795634950.39", "host-1795634950.10001"},
		{"longer sequence is another id", "1795634950.391", "1795634950.391"},
		{"shorter prefix id not matched inside", "1795634950.39", "1795634950.10001"},
		{"json", `{"channel2_uniqueid":"1795634950.39"}`, `{"channel2_uniqueid":"1795634950.10001"}`},
		{"timestamp left alone", "1795634950.390000", "1795634950.390000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replaceUniqueids(tt.in, ids); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReplaceSuffixes(t *testing.T) {
	sufs := map[string]string{"0000002b": "80001000"}
	tests := []struct{ name, in, want string }{
		{"channel", "Local/101@phones-0000002b;1", "Local/101@phones-80001000;1"},
		{"json", `{"channel2_name":"Local/101@phones-0000002b;1"}`, `{"channel2_name":"Local/101@phones-80001000;1"}`},
		{"two channels", "Local/1@a-0000002b;1,Local/1@a-0000002b;2", "Local/1@a-80001000;1,Local/1@a-80001000;2"},
		{"not a channel", "x-0000002b", "x-0000002b"},
		{"longer word", "Local/1@a-0000002bcd", "Local/1@a-0000002bcd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := replaceSuffixes(tt.in, sufs); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestShiftFileDates(t *testing.T) {
	tests := []struct {
		name, in, want string
		delta          time.Duration
	}{
		{"recording name", "in-20261125-193405-79267778899-1795635245.83.wav", "in-20261125-203405-79267778899-1795635245.83.wav", time.Hour},
		{"over midnight", "out-20261125-235959-101", "out-20261126-000001-101", 2 * time.Second},
		{"phone numbers are not dates", "Local/89161234567@trunk-out-00000014;1", "Local/89161234567@trunk-out-00000014;1", time.Hour},
		{"no valid date", "x-20261399-999999-y", "x-20261399-999999-y", time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shiftFileDates(tt.in, tt.delta); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCallerID(t *testing.T) {
	tests := []struct{ name, in, num, cidName string }{
		{"quoted", `"Alice" <101>`, "101", "Alice"},
		{"unquoted", `Bob Smith <102>`, "102", "Bob Smith"},
		{"number only", "79161234567", "79161234567", ""},
		{"name only", "Reception", "", "Reception"},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			num, name := parseCallerID(tt.in)
			if num != tt.num || name != tt.cidName {
				t.Fatalf("parseCallerID(%q) = %q, %q", tt.in, num, name)
			}
		})
	}
}

func TestEventMask(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
	}{
		{"on", "on", int64(classAll)},
		{"yes", "yes", int64(classAll)},
		{"off", "off", 0},
		{"classes", "call,cdr", int64(classCall | classCDR)},
		{"number", "3", 3},
		{"empty", " ", -1},
		{"unknown class", "bogus", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := eventMask(tt.in); got != tt.want {
				t.Fatalf("eventMask(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}
