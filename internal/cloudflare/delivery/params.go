package delivery

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/edgeban/edgeban/internal/cloudflare"
)

// Params are a destination and its credential as a user states them, with
// fail2ban's parameter names in mind (cfuser, cftoken, cftoken_file, cfscope,
// cfzone, cfaccount, cflist, cfmode, cfapi, cfprofile). Resolve turns them
// into a Spec and an Auth.
type Params struct {
	API         string
	Scope       string
	Account     string
	Zone        string
	List        string
	Mode        string
	Notes       string
	AggregateV6 bool
	Capacity    int
	Policy      string
	Plan        string // free, pro, business or enterprise: sets a list's capacity

	Email       string // cfuser: with a secret, the global API key is used
	TokenFile   string // cftoken_file
	SecretStdin bool   // the secret comes on standard input (keeps it out of ps); an empty line means none
	Credentials string // the credentials file; "" for none
	Profile     string // the profile in it
}

// Env is what Resolve reads besides Params: the environment and stdin.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
}

// Resolve finds the credential (stdin, then cftoken_file, then the
// environment, then the credentials file's profile) and fills the spec's
// defaults from the profile.
func (p Params) Resolve(env Env) (Spec, cloudflare.Auth, error) {
	var prof cloudflare.Profile
	haveProfile := false
	if p.Credentials != "" {
		creds, err := cloudflare.LoadCredentials(p.Credentials)
		if err != nil && !(errors.Is(err, os.ErrNotExist) && p.Profile == "") {
			return Spec{}, cloudflare.Auth{}, err
		}
		if err == nil {
			name := p.Profile
			if name == "" {
				name = "default"
			}
			prof, err = creds.Profile(name)
			if err != nil && p.Profile != "" {
				return Spec{}, cloudflare.Auth{}, err
			}
			haveProfile = err == nil
		}
	} else if p.Profile != "" {
		return Spec{}, cloudflare.Auth{}, fmt.Errorf("profile %q given, but no credentials file", p.Profile)
	}

	var auth cloudflare.Auth
	secret := ""
	if p.SecretStdin {
		s, err := readSecret(env.Stdin)
		if err != nil {
			return Spec{}, cloudflare.Auth{}, fmt.Errorf("secret on stdin: %w", err)
		}
		secret = s
	}
	if secret == "" && p.TokenFile != "" {
		s, err := cloudflare.ReadSecretFile(p.TokenFile)
		if err != nil {
			return Spec{}, cloudflare.Auth{}, err
		}
		secret = s
	}
	switch {
	case secret != "" && p.Email != "":
		auth = cloudflare.Auth{Email: p.Email, Key: secret}
	case secret != "":
		auth = cloudflare.Auth{Token: secret}
	default:
		if a, ok := cloudflare.AuthFromEnv(env.Getenv); ok {
			auth = a
		} else if haveProfile {
			auth = prof.Auth
		}
	}
	if auth == (cloudflare.Auth{}) {
		return Spec{}, cloudflare.Auth{}, errors.New("no Cloudflare credential: give --secret-stdin, --token-file, CLOUDFLARE_API_TOKEN, or a credentials file profile")
	}

	spec := Spec{
		API: p.API, Scope: p.Scope, Account: p.Account, Zone: p.Zone, List: p.List,
		Mode: p.Mode, Notes: p.Notes, AggregateV6: p.AggregateV6, Capacity: p.Capacity, Policy: p.Policy,
	}
	if haveProfile {
		if spec.API == "" {
			spec.API = prof.API
		}
		if spec.Account == "" {
			spec.Account = prof.Account
		}
		if spec.Zone == "" {
			spec.Zone = prof.Zone
		}
	}
	if spec.Scope == "" {
		switch {
		case spec.List != "":
			spec.Scope = ScopeList
		case spec.Zone != "":
			spec.Scope = ScopeZone
		case spec.Account != "":
			spec.Scope = ScopeAccount
		default:
			spec.Scope = ScopeUser
		}
	}
	if spec.Capacity == 0 && spec.Scope == ScopeList {
		switch strings.ToLower(p.Plan) {
		case "", "free", "pro", "business":
			spec.Capacity = ListCapFree
		case "enterprise":
			spec.Capacity = ListCapEnterpise
		default:
			return Spec{}, cloudflare.Auth{}, fmt.Errorf("plan %q: use free, pro, business or enterprise", p.Plan)
		}
	}
	spec.Cred = auth.Fingerprint()
	spec, err := spec.Normalize()
	if err != nil {
		return Spec{}, cloudflare.Auth{}, err
	}
	return spec, auth, nil
}

// readSecret reads one line, the secret, from r. An empty line means that
// no secret was given there (fail2ban's action passes its cftoken, which may
// be empty when another source is meant).
func readSecret(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no standard input")
	}
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	s := strings.TrimRight(line, "\r\n")
	if strings.TrimSpace(s) == "" {
		return "", nil // nothing given: the other sources apply
	}
	return s, nil
}
