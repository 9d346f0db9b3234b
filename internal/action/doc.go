// Package action runs a jail's actions: fail2ban's shell-command actions
// (action.d), read for a jail as fail2ban does, with the jail's
// parameters, [Init] defaults and <tag> substitution; and the actions
// edgeban runs natively in their place, with no shell: Cloudflare's
// (cloudflare.go) and the mails with whois and log lines (mail.go).
package action
