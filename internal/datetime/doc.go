// Package datetime finds the date in a log line the way fail2ban does.
//
// It implements fail2ban's date templates: strptime-style patterns
// (%Y, %m, %d, %H, %b, %z, the %Ex… exact forms and the rest), the special
// forms {^LN-BEG}, {UNB}, {DATE}, {DEFAULT}, {NONE}, EPOCH, LEPOCH and
// TAI64N, the word-boundary wrapping fail2ban adds around a template, and
// the default detector: the ordered list of fail2ban's default templates,
// tried in order, with the template that matched last promoted so that the
// next line tries it first.
//
// Patterns are translated to Go's RE2 syntax. fail2ban's regular expressions
// use look-arounds and back-references that RE2 lacks; each is rewritten to
// an equivalent form (see translate) so that the date found, its span and
// the fields captured are the ones fail2ban's Python regex engine finds.
//
// A [Detector] reorders its templates while it works and so is not safe for
// concurrent use; give each filter its own.
//
// # Differences from fail2ban
//
//   - %f is kept in the time returned; fail2ban drops it (EPOCH fractions it
//     keeps, as here).
//   - The year and "today" rules compare instants; fail2ban compares naive
//     wall-clock values, which differ by the zone offset when the line has
//     a zone (only dates within hours of the one-day threshold are affected).
//   - A zone written in the line gives a fixed offset, as in fail2ban; the
//     Options.Location used otherwise may be any zone, DST included
//     (fail2ban's logtimezone is a fixed offset).
//   - \b is ASCII in Go: a non-ASCII letter or digit right next to a date
//     can make a word boundary differ.
//   - In a {DATE} datepattern fail2ban turns the EPOCH and TAI64N defaults
//     into templates matching the literal words "Epoch" and "TAI64N"; they
//     are left out here.
//   - fail2ban counts a template's regex matches per process for one of its
//     "stop searching" rules; here they are counted per Detector.
//   - When the last template is tried again at the last date's place,
//     fail2ban searches from that place; here the search starts one
//     character earlier (for the word-begin test) and, if the template
//     matches there first, falls back to the full search (rare).
//   - %c, %x, %X (locale composites) and %G %u %V are not directives here;
//     like any unknown directive they stay literal text.
package datetime
