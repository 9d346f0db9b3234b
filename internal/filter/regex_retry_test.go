package filter

import (
	"errors"
	"testing"
	"time"
)

func TestRetrySpurious(t *testing.T) {
	errTimeout := errors.New("match timeout")
	tests := []struct {
		name      string
		fails     int           // calls that fail before one succeeds
		failAfter time.Duration // how long a failing call takes
		wantErr   bool
		wantCalls int
	}{
		{"no timeout", 0, 0, false, 1},
		{"spurious timeouts are retried", 2, 0, false, 3},
		{"at most four tries", 10, 0, true, 4},
		{"a real timeout stands", 10, 30 * time.Millisecond, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			v, err := retrySpurious(40*time.Millisecond, func() (int, error) {
				calls++
				if calls <= tt.fails {
					time.Sleep(tt.failAfter)
					return 0, errTimeout
				}
				return 7, nil
			})
			if (err != nil) != tt.wantErr || calls != tt.wantCalls {
				t.Fatalf("err %v after %d calls; want error %v after %d", err, calls, tt.wantErr, tt.wantCalls)
			}
			if err == nil && v != 7 {
				t.Fatalf("value %d", v)
			}
		})
	}
}
