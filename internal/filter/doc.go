// Package filter compiles fail2ban filter regexes. So far it holds the regex
// layer: expansion of fail2ban's regex tags (<HOST>, <F-USER>...</F-USER>,
// ...) into the text fail2ban itself produces, and the translation of that
// Python `re` pattern into a Go regexp (RE2) or, only when RE2 cannot express
// it, a regexp2 pattern.
//
// The [Init] <tag> substitution of filter definitions, prefregex handling,
// ignoreregex and multi-line buffering are separate layers built on top of
// Compile.
//
// Matching follows Python's re.search on one log line. Lines are given
// without their trailing newline, so Python's `$` (end, or before a final
// "\n") and RE2's (end of text) agree; regexp2's default .NET mode has
// Python's `$` anyway. Offsets are in bytes. The remaining differences from
// Python in RE2 patterns are \b and \B (ASCII word boundaries) and \W and
// \S inside a character class (ASCII complements); both matter only next to
// non-ASCII letters, digits or spaces.
package filter
