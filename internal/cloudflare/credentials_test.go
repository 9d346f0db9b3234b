package cloudflare

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleCredentials = "\uFEFF# /etc/edgeban/cloudflare.credentials (mode 0600)\r\n" + `
[default]
token = ` + testToken + `
account = 0123456789abcdef0123456789abcdef

; the seed's Global API Key
[seed]
email = admin@example.com
key   = "` + testKey + `"
zone  = example.com
api   = http://127.0.0.1:8080/client/v4
`

func TestParseCredentials(t *testing.T) {
	c, err := ParseCredentials(strings.NewReader(sampleCredentials), "creds")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Names(), ","); got != "default,seed" {
		t.Errorf("names %s", got)
	}
	def, err := c.Profile("")
	if err != nil {
		t.Fatal(err)
	}
	want := Profile{Name: "default", Auth: Auth{Token: testToken}, Account: "0123456789abcdef0123456789abcdef"}
	if def != want {
		t.Errorf("default = %+v", def)
	}
	seed, err := c.Profile("seed")
	if err != nil {
		t.Fatal(err)
	}
	want = Profile{Name: "seed", Auth: Auth{Email: testEmail, Key: testKey}, Zone: "example.com", API: "http://127.0.0.1:8080/client/v4"}
	if seed != want {
		t.Errorf("seed = %+v", seed)
	}
	if _, err := c.Profile("prod"); err == nil || !strings.Contains(err.Error(), "default, seed") {
		t.Errorf("missing profile: %v", err)
	}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s %d", c, c, c, c, c), fmt.Sprintf("%v %+v %#v", seed, seed, seed)} {
		if strings.Contains(s, testToken) || strings.Contains(s, testKey) {
			t.Errorf("printing reveals a secret: %s", s)
		}
	}
}

func TestParseCredentialsErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown key", "[default]\ntoken = abc\n\ntokn = x\n", `creds: line 4: unknown key "tokn"`},
		{"duplicate key", "[default]\ntoken = abc\nTOKEN = def\n", `creds: line 3: duplicate key "token" in profile [default] (first on line 2)`},
		{"duplicate profile", "[a]\ntoken = abc\n[b]\ntoken = abc\n[a]\ntoken = x\n", `creds: line 5: duplicate profile [a] (first on line 1)`},
		{"key before profile", "token = abc\n", `creds: line 1: key "token" before the first [profile]`},
		{"no equals", "[a]\ntoken abc\n", `creds: line 2: want "key = value"`},
		{"unclosed header", "[a\ntoken = abc\n", `creds: line 1: profile header without closing ']'`},
		{"bad profile name", "[a b]\ntoken = abc\n", `creds: line 1: invalid profile name "a b"`},
		{"empty value", "[a]\ntoken =\n", `creds: line 2: key "token" has an empty value`},
		{"token with space", "[a]\ntoken = abc def\n", `creds: line 2: key "token": value contains spaces`},
		{"no credential", "[a]\naccount = abc\n", `creds: line 1: profile [a]: no credential`},
		{"email without key", "[a]\nemail = a@example.com\n", `creds: line 1: profile [a]: e-mail given without a Global API Key`},
		{"token and key", "[a]\ntoken = abc\nemail = a@example.com\nkey = k\n", `creds: line 1: profile [a]: set either`},
		{"second profile incomplete", "[a]\ntoken = abc\n[b]\nkey = k\n", `creds: line 3: profile [b]: Global API Key given without an e-mail`},
		{"bad email", "[a]\nemail = nobody\nkey = k\n", `creds: line 2: key "email": invalid e-mail "nobody"`},
		{"bad account", "[a]\ntoken = t\naccount = 01/23\n", `creds: line 3: key "account": invalid account id "01/23"`},
		{"account with inline comment", "[a]\ntoken = t\naccount = 0123 # prod\n", `creds: line 3: key "account": invalid account id "0123 # prod"`},
		{"bad api", "[a]\ntoken = t\napi = ftp://x\n", `creds: line 3: key "api": want an absolute http(s) URL`},
		{"bad zone", "[a]\ntoken = t\nzone = a b\n", `creds: line 3: key "zone": invalid zone id or name "a b"`},
		{"empty", "# nothing\n", `creds: no [profile] sections`},
		{"long line", "[a]\ntoken = " + strings.Repeat("x", 70000) + "\n", `creds: line 2: line too long`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCredentials(strings.NewReader(tc.in), "creds")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant prefix %s", err, tc.want)
			}
		})
	}
}

func TestParseCredentialsErrorsHideSecrets(t *testing.T) {
	// A secret on a line with a problem must not be echoed.
	for _, in := range []string{
		"[a]\ntoken = " + testToken + " trailing\n",
		"[a]\nkey = " + testKey + "\x01\n",
		"[a]\ntoken = " + testToken + "\nkey = " + testKey + "\nemail = a@example.com\n",
		"[a]\nkey = " + testKey + "\n",
	} {
		_, err := ParseCredentials(strings.NewReader(in), "creds")
		if err == nil {
			t.Fatalf("no error for %q", in)
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testKey) {
			t.Errorf("error reveals the secret: %v", err)
		}
	}
}

func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cloudflare.credentials")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadCredentials(t *testing.T) {
	for _, mode := range []os.FileMode{0o600, 0o400, 0o700} {
		p := writeFile(t, sampleCredentials, mode)
		c, err := LoadCredentials(p)
		if err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		if _, err := c.Profile("seed"); err != nil {
			t.Error(err)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o666} {
		p := writeFile(t, sampleCredentials, mode)
		_, err := LoadCredentials(p)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) || !strings.Contains(err.Error(), p) {
			t.Errorf("mode %04o: err = %v", mode, err)
		}
	}
	p := writeFile(t, "[default]\ntoken = abc\nbogus = 1\n", 0o600)
	if _, err := LoadCredentials(p); err == nil || !strings.HasPrefix(err.Error(), p+": line 3: unknown key") {
		t.Errorf("err = %v", err)
	}
	if _, err := LoadCredentials(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := LoadCredentials(t.TempDir()); err == nil {
		t.Error("directory accepted")
	}
}

func TestReadSecretFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr string
	}{
		{"newline", testToken + "\n", 0o600, testToken, ""},
		{"crlf", testToken + "\r\n", 0o400, testToken, ""},
		{"no newline", testToken, 0o600, testToken, ""},
		{"empty", "\n", 0o600, "", "empty secret"},
		{"two lines", testToken + "\nsecond\n", 0o600, "", "several lines"},
		{"inner space", "abc def\n", 0o600, "", "spaces or control"},
		{"group readable", testToken + "\n", 0o640, "", "chmod 600"},
		{"world readable", testToken + "\n", 0o644, "", "chmod 600"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadSecretFile(writeFile(t, tc.content, tc.mode))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), testToken) {
					t.Errorf("error reveals the secret: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestAuthFromEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Auth
		ok   bool
	}{
		{"token", map[string]string{"CLOUDFLARE_API_TOKEN": testToken + "\n"}, Auth{Token: testToken}, true},
		{"token wins", map[string]string{"CLOUDFLARE_API_TOKEN": testToken, "CLOUDFLARE_EMAIL": testEmail, "CLOUDFLARE_API_KEY": testKey}, Auth{Token: testToken}, true},
		{"key", map[string]string{"CLOUDFLARE_EMAIL": testEmail, "CLOUDFLARE_API_KEY": testKey}, Auth{Email: testEmail, Key: testKey}, true},
		{"key without email", map[string]string{"CLOUDFLARE_API_KEY": testKey}, Auth{}, false},
		{"nothing", map[string]string{}, Auth{}, false},
	}
	for _, tc := range tests {
		got, ok := AuthFromEnv(func(k string) string { return tc.env[k] })
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: got %v, %v", tc.name, got, ok)
		}
	}
}
