package cloudflare

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Auth is a Cloudflare credential: either an API token (preferred) or the
// legacy Global API Key with its account e-mail.
//
// A Token is sent as "Authorization: Bearer"; otherwise Email and Key are sent
// as X-Auth-Email and X-Auth-Key. Auth never prints its secret: String,
// GoString, Format, LogValue and MarshalJSON all produce a redacted form.
type Auth struct {
	Token string // API token
	Email string // account e-mail for the Global API Key
	Key   string // Global API Key
}

// Kind reports which credential Auth holds: "token", "key" or "" when empty.
func (a Auth) Kind() string {
	switch {
	case a.Token != "":
		return "token"
	case a.Email != "" || a.Key != "":
		return "key"
	}
	return ""
}

// Valid reports whether a holds exactly one usable credential.
// The error never contains the secret.
func (a Auth) Valid() error {
	switch {
	case a.Token != "" && (a.Email != "" || a.Key != ""):
		return errors.New("cloudflare: auth: set either an API token or an e-mail and Global API Key, not both")
	case a.Token != "":
		if !validSecret(a.Token) {
			return errors.New("cloudflare: auth: API token contains spaces or control characters")
		}
		return nil
	case a.Email == "" && a.Key == "":
		return errors.New("cloudflare: auth: no credential (need an API token, or an e-mail and Global API Key)")
	case a.Key == "":
		return errors.New("cloudflare: auth: e-mail given without a Global API Key")
	case a.Email == "":
		return errors.New("cloudflare: auth: Global API Key given without an e-mail")
	case !validEmail(a.Email):
		return fmt.Errorf("cloudflare: auth: invalid e-mail %q", a.Email)
	case !validSecret(a.Key):
		return errors.New("cloudflare: auth: Global API Key contains spaces or control characters")
	}
	return nil
}

// validSecret reports whether s can be sent in an HTTP header as-is:
// printable ASCII without spaces.
func validSecret(s string) bool {
	if s == "" || len(s) > 4096 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || len(s) > 254 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Fingerprint returns a stable 16-hex-digit identifier of the credential,
// derived with SHA-256 from its kind, e-mail and secret. It lets logs, the
// outbox and status output tell credentials apart without revealing them.
// An empty Auth has an empty fingerprint.
func (a Auth) Fingerprint() string {
	kind := a.Kind()
	if kind == "" {
		return ""
	}
	secret := a.Token
	if kind == "key" {
		secret = a.Key
	}
	h := sha256.New()
	// Length-prefix each part so that no two different credentials hash the same input.
	for _, part := range []string{kind, a.Email, secret} {
		fmt.Fprintf(h, "%d:%s;", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// String returns a redacted description: "token:…" followed by the first
// eight digits of the fingerprint, "key:" followed by the e-mail, or "none".
// No character of the secret is shown.
func (a Auth) String() string {
	switch a.Kind() {
	case "token":
		return "token:…" + a.Fingerprint()[:8]
	case "key":
		return "key:" + a.Email
	}
	return "none"
}

// GoString returns the redacted Go-syntax form used by %#v.
func (a Auth) GoString() string {
	return "cloudflare.Auth(" + strconv.Quote(a.String()) + ")"
}

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// %x, %d, ...) prints the redacted form, also when Auth is a field of a
// larger struct such as Options.
func (a Auth) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, a.GoString())
	case verb == 'q':
		io.WriteString(f, strconv.Quote(a.String()))
	default:
		io.WriteString(f, a.String())
	}
}

// LogValue implements slog.LogValuer with the redacted kind, e-mail and
// fingerprint.
func (a Auth) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("kind", a.Kind())}
	if a.Kind() == "key" {
		attrs = append(attrs, slog.String("email", a.Email))
	}
	attrs = append(attrs, slog.String("fingerprint", a.Fingerprint()))
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes the redacted String form, so that serializing a struct
// that embeds Auth never writes the secret.
func (a Auth) MarshalJSON() ([]byte, error) {
	return json.Marshal(a.String())
}

// apply sets the authentication headers on h.
func (a Auth) apply(h http.Header) {
	if a.Token != "" {
		h.Set("Authorization", "Bearer "+a.Token)
		return
	}
	h.Set("X-Auth-Email", a.Email)
	h.Set("X-Auth-Key", a.Key)
}

// redact replaces every occurrence of the secret in s. It guards error
// strings built from server-controlled text (a hostile or broken server may
// echo request headers).
func (a Auth) redact(s string) string {
	for _, secret := range []string{a.Token, a.Key} {
		if len(secret) >= 4 && strings.Contains(s, secret) {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}
