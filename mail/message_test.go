package mail

import (
	"strings"
	"testing"
)

func TestFold(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{"short", "Subject: hello"},
		{"exactly the limit", "Subject: " + strings.Repeat("x", 69)},
		{"many words", "Subject: " + strings.Repeat("word ", 40) + "end"},
		{"one long word", "Subject: " + strings.Repeat("x", 120)},
		{"runs of spaces", "Subject: " + strings.Repeat("ab    ", 30)},
		{"trailing spaces at the limit", "Subject: " + strings.Repeat("y", 69) + "     "},
		{"encoded words", "Subject: =?utf-8?q?=C3=9Cn=C3=AFcode_subject_that_is_rather_long_and_keeps_going_o?= =?utf-8?q?n_and_on?="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fold(tt.line, 78)
			// Unfolding (RFC 5322 2.2.3) removes the CRLFs only.
			if unfolded := strings.ReplaceAll(got, "\r\n", ""); unfolded != tt.line {
				t.Fatalf("fold changed the text: %q", got)
			}
			for i, l := range strings.Split(got, "\r\n") {
				if strings.TrimSpace(l) == "" {
					t.Fatalf("line %d is blank: %q", i, got)
				}
				// A line may only exceed the limit when it is one word,
				// or by spaces (never moved to a line of their own).
				if len(strings.TrimRight(l, " ")) > 78 && strings.Contains(strings.TrimSpace(l), " ") {
					t.Fatalf("line %d has %d characters and could have been folded: %q", i, len(l), l)
				}
			}
		})
	}
}
