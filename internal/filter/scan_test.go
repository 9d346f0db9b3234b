package filter

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestScanLines checks how Scan splits a log: "\n" only, "\r" stripped,
// an unterminated last line read, comments and empty lines numbered but
// not tested, an over-long line cut without losing the next one, invalid
// UTF-8 and control bytes passed on.
func TestScanLines(t *testing.T) {
	const fail = "Nov 25 10:00:00 h sshd[1]: Invalid user x from 192.0.2.%d port 22"
	huge := "Nov 25 10:00:00 h sshd[1]: " + strings.Repeat("A", 3*MaxLineSize)
	tests := []struct {
		name                           string
		log                            string
		lines, physical, trunc, failed int
		wantNumbers                    []int
	}{
		{"plain", fail + "\n" + fail + "\n", 2, 2, 0, 2, []int{1, 2}},
		{"crlf and no final newline", fail + "\r\n" + fail, 2, 2, 0, 2, []int{1, 2}},
		{"comments and empty", "# c\n\n" + fail + "\n#" + fail + "\n", 1, 4, 0, 1, []int{3}},
		{"other control bytes stay", "Nov 25 10:00:00 h sshd[1]: \x00\x0b\rInvalid user x from 192.0.2.1 port 22\n", 1, 1, 0, 0, nil},
		{"invalid utf-8", "Nov 25 10:00:00 h sshd[1]: Invalid user \xff\xfe from 192.0.2.1 port 22\n", 1, 1, 0, 1, []int{1}},
		{"huge line then a failure", huge + "\n" + fail + "\n", 2, 2, 1, 1, []int{2}},
		{"huge last line", fail + "\n" + huge, 2, 2, 1, 1, []int{1}},
	}
	for _, tc := range tests {
		// workers -1: a multi-line filter, scanned sequentially.
		for _, workers := range []int{-1, 1, 2} {
			t.Run(tc.name, func(t *testing.T) {
				def := Literal(`^\s*\S+ sshd\[\d+\]: Invalid user .* from <HOST> port \d+$`)
				cfg := Config{CheckAll: true, Location: time.UTC, Workers: workers}
				if workers < 0 {
					cfg.MaxLines = 2
				}
				f, err := New(def, cfg)
				if err != nil {
					t.Fatal(err)
				}
				var numbers []int
				log := strings.ReplaceAll(tc.log, "%d", "1")
				st, err := f.Scan(context.Background(), strings.NewReader(log), func(lr *LineResult) error {
					for _, fl := range lr.Failures {
						if fl.ID != "192.0.2.1" {
							t.Errorf("id %q", fl.ID)
						}
						numbers = append(numbers, lr.Number)
					}
					return nil
				}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if st.Lines != tc.lines || st.Physical != tc.physical || st.Truncated != tc.trunc || st.Matched != tc.failed {
					t.Errorf("stats %+v, want lines %d physical %d truncated %d matched %d", st, tc.lines, tc.physical, tc.trunc, tc.failed)
				}
				if len(numbers) != len(tc.wantNumbers) || (len(numbers) > 0 && numbers[0] != tc.wantNumbers[0]) {
					t.Errorf("failures on lines %v, want %v", numbers, tc.wantNumbers)
				}
			})
		}
	}
}
