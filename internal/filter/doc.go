// Package filter runs fail2ban filters: it finds failures in log lines as
// fail2ban's filter does.
//
// It has three layers:
//
//   - Regexes (Compile): expansion of fail2ban's regex tags (<HOST>,
//     <F-USER>...</F-USER>, ...) into the text fail2ban itself produces,
//     and the translation of that Python `re` pattern into a Go regexp
//     (RE2) or, only when RE2 cannot express it, a regexp2 pattern. Each
//     pattern is translated once, at load time.
//   - Definitions (Load, FromConfig): a filter.d file read with fail2ban's
//     rules: [Definition] and [Init] options, a jail's parameters such as
//     sshd[mode=aggressive], <tag> substitution, failregex split per line.
//   - Filters (New, Filter.Process): the date is found and cut out of the
//     line (package datetime), then ignoreregex, prefregex (F-CONTENT),
//     the failregexes and, for multi-line filters, the line buffer
//     (maxlines, <SKIPLINES>) and the failures merged by mlfid (F-NOFAIL,
//     F-MLFFORGET, F-MLFGAINED), as fail2ban's findFailure does.
//
// Matching follows Python's re.search. A single line is searched without
// its trailing newline, so Python's `$` (end, or before a final "\n") and
// RE2's (end of text) agree; multi-line buffers are searched as fail2ban
// builds them, each line followed by "\n", with re.MULTILINE. Offsets are
// in bytes. The remaining differences from Python in RE2 patterns are \b
// and \B (ASCII word boundaries) and \W and \S inside a character class
// (ASCII complements); both matter only next to non-ASCII letters, digits
// or spaces.
//
// Unlike fail2ban, a host name is never resolved here: a Failure says
// whether its id is a name (Resolve) and the daemon applies usedns.
package filter
