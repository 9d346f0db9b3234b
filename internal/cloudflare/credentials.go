package cloudflare

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

const (
	// maxCredentialsSize caps a credentials file.
	maxCredentialsSize = 1 << 20
	// maxSecretFileSize caps a cftoken_file.
	maxSecretFileSize = 64 << 10
)

// Credentials is a parsed credentials file: named profiles, each with a
// credential and optional account, zone and API base URL.
//
//	# /etc/edgeban/cloudflare.credentials (mode 0600)
//	[default]
//	token = ...
//	account = 0123...
//	[seed]
//	email = admin@example.com
//	key = ...
//	zone = example.com
type Credentials struct {
	name     string
	profiles map[string]Profile
}

// Profile is one [section] of a credentials file.
type Profile struct {
	Name    string
	Auth    Auth
	Account string // account id
	Zone    string // zone id or name (see IsID and ZoneIDByName)
	API     string // base URL; empty means DefaultBaseURL
}

// Profile returns the profile with the given name; "" means "default".
func (c *Credentials) Profile(name string) (Profile, error) {
	if name == "" {
		name = "default"
	}
	p, ok := c.profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("%s: no profile [%s] (have: %s)", c.name, name, strings.Join(c.Names(), ", "))
	}
	return p, nil
}

// Names returns the profile names in sorted order.
func (c *Credentials) Names() []string {
	names := make([]string, 0, len(c.profiles))
	for n := range c.profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// String describes the file and its profiles without any secret.
func (c *Credentials) String() string {
	return "cloudflare.Credentials(" + c.name + ": " + strings.Join(c.Names(), ", ") + ")"
}

// Format implements fmt.Formatter so that no verb prints a secret.
func (c *Credentials) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }

// LoadCredentials reads a credentials file. The file must not be readable
// or writable by group or others.
func LoadCredentials(path string) (*Credentials, error) {
	data, err := readPrivateFile(path, maxCredentialsSize)
	if err != nil {
		return nil, err
	}
	return ParseCredentials(bytes.NewReader(data), path)
}

// readPrivateFile reads a regular file of at most max bytes whose mode
// grants nothing to group or others (checked on the open file).
func readPrivateFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o066 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets group or others read or write it; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
}

// ParseCredentials parses a credentials file read from r; name is used in
// errors, which give the line and key but never a secret value.
//
// The format is INI-like: "[profile]" headers, "key = value" lines, and
// comment lines starting with '#' or ';'. Keys are token, email, key,
// account, zone and api. A value may be enclosed in matching double or
// single quotes. Every profile
// needs either a token or an email and key.
func ParseCredentials(r io.Reader, name string) (*Credentials, error) {
	c := &Credentials{name: name, profiles: map[string]Profile{}}
	headerLine := map[string]int{}
	var (
		cur     *Profile
		curLine int
		keys    map[string]int
	)
	finish := func() error {
		if cur == nil {
			return nil
		}
		if err := cur.Auth.Valid(); err != nil {
			return fmt.Errorf("%s: line %d: profile [%s]: %s", name, curLine, cur.Name, strings.TrimPrefix(err.Error(), "cloudflare: auth: "))
		}
		c.profiles[cur.Name] = *cur
		return nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\uFEFF")
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s: line %d: profile header without closing ']'", name, n)
			}
			pname := strings.TrimSpace(line[1 : len(line)-1])
			if !validProfileName(pname) {
				return nil, fmt.Errorf("%s: line %d: invalid profile name %q", name, n, pname)
			}
			if first, dup := headerLine[pname]; dup {
				return nil, fmt.Errorf("%s: line %d: duplicate profile [%s] (first on line %d)", name, n, pname, first)
			}
			if err := finish(); err != nil {
				return nil, err
			}
			headerLine[pname] = n
			cur, curLine, keys = &Profile{Name: pname}, n, map[string]int{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %d: want \"key = value\" or \"[profile]\"", name, n)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = unquote(strings.TrimSpace(v))
		if cur == nil {
			return nil, fmt.Errorf("%s: line %d: key %q before the first [profile]", name, n, sanitize(k, 40))
		}
		if first, dup := keys[k]; dup {
			return nil, fmt.Errorf("%s: line %d: duplicate key %q in profile [%s] (first on line %d)", name, n, k, cur.Name, first)
		}
		if err := setCredentialKey(cur, k, v); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, n, err)
		}
		keys[k] = n
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s: line %d: line too long", name, n+1)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := finish(); err != nil {
		return nil, err
	}
	if len(c.profiles) == 0 {
		return nil, fmt.Errorf("%s: no [profile] sections", name)
	}
	return c, nil
}

// setCredentialKey stores one key. Its errors name the key, never the value
// of a secret.
func setCredentialKey(p *Profile, k, v string) error {
	if v == "" {
		return fmt.Errorf("key %q has an empty value", k)
	}
	switch k {
	case "token":
		if !validSecret(v) {
			return errors.New(`key "token": value contains spaces or control characters`)
		}
		p.Auth.Token = v
	case "key":
		if !validSecret(v) {
			return errors.New(`key "key": value contains spaces or control characters`)
		}
		p.Auth.Key = v
	case "email":
		if !validEmail(v) {
			return fmt.Errorf("key \"email\": invalid e-mail %q", sanitize(v, 80))
		}
		p.Auth.Email = v
	case "account":
		if err := checkID("account", v); err != nil {
			return fmt.Errorf("key \"account\": invalid account id %q", sanitize(v, 80))
		}
		p.Account = v
	case "zone":
		if strings.ContainsAny(v, " \t/?#&=%") || len(v) > 253 || !printableASCII(v) {
			return fmt.Errorf("key \"zone\": invalid zone id or name %q", sanitize(v, 80))
		}
		p.Zone = v
	case "api":
		if _, err := checkBaseURL(v); err != nil {
			return errors.New(`key "api": want an absolute http(s) URL without user, query or fragment`)
		}
		p.API = v
	default:
		return fmt.Errorf("unknown key %q", sanitize(k, 40))
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func validProfileName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// unquote strips one pair of matching surrounding quotes.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// AuthFromEnv returns the credential from the environment:
// CLOUDFLARE_API_TOKEN, or else CLOUDFLARE_EMAIL with CLOUDFLARE_API_KEY.
// ok is false when neither is set completely. getenv is usually os.Getenv.
func AuthFromEnv(getenv func(string) string) (a Auth, ok bool) {
	if t := strings.TrimSpace(getenv("CLOUDFLARE_API_TOKEN")); t != "" {
		return Auth{Token: t}, true
	}
	email := strings.TrimSpace(getenv("CLOUDFLARE_EMAIL"))
	key := strings.TrimSpace(getenv("CLOUDFLARE_API_KEY"))
	if email != "" && key != "" {
		return Auth{Email: email, Key: key}, true
	}
	return Auth{}, false
}

// ReadSecretFile reads a secret (a token or key) from a file such as the
// one named by cftoken_file=. The file must not be readable or writable by
// group or others. Surrounding white space and the trailing newline are
// removed; an empty secret or one spanning several lines is an error.
func ReadSecretFile(path string) (string, error) {
	data, err := readPrivateFile(path, maxSecretFileSize)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(strings.TrimPrefix(string(data), "\uFEFF"))
	switch {
	case s == "":
		return "", fmt.Errorf("%s: empty secret", path)
	case strings.ContainsAny(s, "\r\n"):
		return "", fmt.Errorf("%s: secret spans several lines; the file must hold one line", path)
	case !validSecret(s):
		return "", fmt.Errorf("%s: secret contains spaces or control characters", path)
	}
	return s, nil
}
