package filter

import (
	"testing"
	"time"
	"unsafe"
)

// TestMLCacheKeepsItsKeys checks that the cache copies an id that points
// into a buffer the caller then reuses, as a scan does with its read
// buffers: the entry must stay reachable by its text.
func TestMLCacheKeepsItsKeys(t *testing.T) {
	now := time.Unix(1700000000, 0)
	tests := []struct {
		name    string
		id      string
		reused  string // what the buffer holds afterwards
		lookups map[string]bool
	}{
		{"reused buffer", " host sshd[100]: ", " host sshd[999]: ", map[string]bool{" host sshd[100]: ": true, " host sshd[999]: ": false}},
		{"cleared buffer", "a", "\x00", map[string]bool{"a": true, "\x00": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := []byte(tt.id)
			c := newMLCache(100, 5*time.Minute)
			c.set(unsafe.String(&buf[0], len(buf)), &failState{}, now)
			copy(buf, tt.reused)
			for id, want := range tt.lookups {
				if got := c.get(id, now) != nil; got != want {
					t.Errorf("get(%q) found %v, want %v", id, got, want)
				}
			}
		})
	}
}
