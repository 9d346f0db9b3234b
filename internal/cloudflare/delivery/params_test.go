package delivery

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParamsResolve(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	os.WriteFile(creds, []byte("[default]\ntoken = profile-token-0123456789abcdef\naccount = 0123456789abcdef0123456789abcdef\n[seed]\nemail = seed@example.com\nkey = seedkey0123456789abcdef0123456789abc\nzone = example.com\n"), 0o600)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("file-token-0123456789abcdef\n"), 0o600)
	env := func(stdin string, vars map[string]string) Env {
		return Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(stdin)}
	}
	tests := []struct {
		name      string
		p         Params
		env       Env
		wantAuth  string // "token:<value>" or "key:<email>:<key>"
		wantScope string
		wantErr   string
	}{
		{"stdin key with cfuser: the seed's global key, user scope", Params{SecretStdin: true, Email: "a@example.com"}, env("stdin-key-0123456789abcdef0123\n", nil), "key:a@example.com:stdin-key-0123456789abcdef0123", "user", ""},
		{"stdin token alone", Params{SecretStdin: true, Zone: "example.com"}, env("stdin-token-0123456789abcdef\n", nil), "token:stdin-token-0123456789abcdef", "zone", ""},
		{"empty stdin falls back to the token file", Params{SecretStdin: true, TokenFile: tokenFile}, env("\n", nil), "token:file-token-0123456789abcdef", "user", ""},
		{"environment", Params{Account: "0123456789abcdef0123456789abcdef"}, env("", map[string]string{"CLOUDFLARE_API_TOKEN": "env-token-0123456789abcdef"}), "token:env-token-0123456789abcdef", "account", ""},
		{"default profile fills the account", Params{Credentials: creds}, env("", nil), "token:profile-token-0123456789abcdef", "account", ""},
		{"named profile", Params{Credentials: creds, Profile: "seed"}, env("", nil), "key:seed@example.com:seedkey0123456789abcdef0123456789abc", "zone", ""},
		{"list scope from --list", Params{Credentials: creds, List: "edgeban"}, env("", nil), "token:profile-token-0123456789abcdef", "list", ""},
		{"unknown profile", Params{Credentials: creds, Profile: "nope"}, env("", nil), "", "", "no profile"},
		{"no credential", Params{}, env("", nil), "", "", "no Cloudflare credential"},
		{"bad mode", Params{SecretStdin: true, Mode: "whitelist"}, env("tok-0123456789abcdef0123\n", nil), "", "", "mode"},
		{"account scope without account", Params{SecretStdin: true, Scope: "account"}, env("tok-0123456789abcdef0123\n", nil), "", "", "account id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, auth, err := tt.p.Resolve(tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := "token:" + auth.Token
			if auth.Token == "" {
				got = "key:" + auth.Email + ":" + auth.Key
			}
			if got != tt.wantAuth {
				t.Errorf("auth %s, want %s", got, tt.wantAuth)
			}
			if spec.Scope != tt.wantScope {
				t.Errorf("scope %s, want %s", spec.Scope, tt.wantScope)
			}
			if spec.Cred != auth.Fingerprint() || strings.Contains(spec.Key(), auth.Token+auth.Key) && auth.Token+auth.Key != "" {
				t.Error("the spec does not carry the credential's fingerprint only")
			}
		})
	}
}

func TestSpecOwnsNotes(t *testing.T) {
	tests := []struct {
		tmpl, note string
		want       bool
	}{
		{"Banned by Fail2Ban", "Banned by Fail2Ban", true},
		{"Banned by Fail2Ban", "Banned by Fail2Ban!", false},
		{"Banned by Fail2Ban", "banned by fail2ban", false},
		{"Fail2Ban {jail}", "Fail2Ban sshd", true},
		{"Fail2Ban {jail}", "Fail2Ban", false},
		{"Fail2Ban {jail}", "office VPN", false},
		{"edgeban {jail} ban", "edgeban nginx ban", true},
		{"edgeban {jail} ban", "edgeban nginx", false},
	}
	for _, tt := range tests {
		if got := (Spec{Notes: tt.tmpl}).Owns(tt.note); got != tt.want {
			t.Errorf("%q owns %q = %v, want %v", tt.tmpl, tt.note, got, tt.want)
		}
	}
}
