package datetime

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// directive is one strptime directive: the regex it becomes and the name
// fail2ban gives it in a template's name.
type directive struct {
	re   string
	name string
}

// tzAbbrRE is a zone abbreviation as fail2ban's %ExZ and %Exz accept it.
const tzAbbrRE = `[A-Z](?:[A-Z]{2,4})?`

// directives maps a directive (without its %) to its regex. It follows
// Python's _strptime.TimeRE as fail2ban's strptime.py overrides and extends
// it (the C locale: English day and month names). %ExY depends on the
// current year and is added by directiveRE.
var directives = map[string]directive{
	"a":   {`(?P<a>mon|tue|wed|thu|fri|sat|sun)`, "DAY"},
	"A":   {`(?P<A>wednesday|saturday|thursday|tuesday|monday|friday|sunday)`, "DAYNAME"},
	"b":   {`(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)`, "MON"},
	"B":   {`(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)`, "MONTH"},
	"d":   {`(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])`, "Day"},
	"f":   {`(?P<f>[0-9]{1,6})`, "Microseconds"},
	"H":   {`(?P<H>[0-1]?\d|2[0-3])`, "24hour"},
	"I":   {`(?P<I>1[0-2]|0[1-9]|[1-9])`, "12hour"},
	"j":   {`(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])`, "Yearday"},
	"m":   {`(?P<m>0?[1-9]|1[0-2])`, "Month"},
	"M":   {`(?P<M>[0-5]?\d)`, "Minute"},
	"p":   {`(?P<p>am|pm)`, "AMPM"},
	"S":   {`(?P<S>[0-5]?\d|6[0-1])`, "Second"},
	"U":   {`(?P<U>5[0-3]|[0-4]\d|\d)`, "Yearweek"},
	"w":   {`(?P<w>[0-6])`, "Weekday"},
	"W":   {`(?P<W>5[0-3]|[0-4]\d|\d)`, "Yearweek"},
	"y":   {`(?P<y>\d\d)`, "Year2"},
	"Y":   {`(?P<Y>\d{4})`, "Year"},
	"z":   {`(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)`, "Zone offset"},
	"Z":   {`(?P<Z>Z|[A-Z]{3,5})`, "Zone name"},
	"k":   {` ?(?P<H>[0-2]?\d)`, "%k"},
	"l":   {` ?(?P<I>1?\d)`, "%l"},
	"ExZ": {`(?P<Z>` + tzAbbrRE + `)`, "ExZone name"},
	"Exz": {`(?P<z>(?:` + tzAbbrRE + `)?[+-][01]\d(?::?\d{2})?|` + tzAbbrRE + `)`, "ExZone offset"},
	"Exd": {`(?P<d>[1-2]\d|0[1-9]|3[0-1])`, "ExDay"},
	"Exm": {`(?P<m>0[1-9]|1[0-2])`, "ExMonth"},
	"ExH": {`(?P<H>[0-1]\d|2[0-3])`, "Ex24hour"},
	"Exk": {` ?(?P<H>[0-1]?\d|2[0-3])`, "%Exk"},
	"Exl": {` ?(?P<I>1[0-2]|\d)`, "%Exl"},
	"ExM": {`(?P<M>[0-5]\d)`, "ExMinute"},
	"ExS": {`(?P<S>[0-5]\d|6[0-1])`, "ExSecond"},
	"Exy": {`(?P<y>\d{2})`, "ExYear2"},
	"%":   {`%`, "%"},
}

// yearCentRE returns the regex of the first three digits of the years %ExY
// accepts: as fail2ban's _getYearCentRE, the decades from 2000 (its
// alternate "now" is at most 2001) up to three years after now. Like
// fail2ban, which uses the real clock here even when its tests fake "now",
// it takes the later of now and the real clock.
func yearCentRE(now time.Time) string {
	if real := time.Now(); real.After(now) {
		now = real
	}
	last := now.Year() + 3
	if last < 2003 {
		last = 2003
	}
	var cents []string
	for y := 2000; y/10 <= last/10; y += 10 {
		cents = append(cents, strconv.Itoa(y/10))
	}
	if len(cents) == 1 {
		return cents[0]
	}
	if last < 2100 {
		var b strings.Builder
		b.WriteString("20[")
		for _, c := range cents {
			b.WriteByte(c[2])
		}
		b.WriteString("]")
		return b.String()
	}
	return "(?:" + strings.Join(cents, "|") + ")"
}

// directiveRE returns the regex and name of the directive at the start of s
// (just after a %), and how many bytes of s it takes; ok is false when s
// does not start with a known directive, which then stays literal text, as
// in fail2ban.
func directiveRE(s string, now time.Time) (re, name string, n int, ok bool) {
	if strings.HasPrefix(s, "Ex") && len(s) >= 3 {
		if s[2] == 'Y' {
			return `(?P<Y>` + yearCentRE(now) + `\d)`, "ExYear", 3, true
		}
		if d, found := directives[s[:3]]; found {
			return d.re, d.name, 3, true
		}
	}
	if len(s) == 0 {
		return "", "", 0, false
	}
	if d, found := directives[s[:1]]; found {
		return d.re, d.name, 1, true
	}
	return "", "", 0, false
}

// expandDirectives replaces every known %-directive of pattern by its regex
// and returns the regex, fail2ban's display name of the pattern, and
// whether a directive matching letters (%a %A %b %B %p) was used, which
// makes fail2ban compile the template case-insensitively.
func expandDirectives(pattern string, now time.Time) (regex, name string, alpha bool) {
	var re, nm strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' {
			re.WriteByte(c)
			nm.WriteByte(c)
			continue
		}
		r, n, l, ok := directiveRE(pattern[i+1:], now)
		if !ok {
			re.WriteByte(c)
			nm.WriteByte(c)
			continue
		}
		switch pattern[i+1] {
		case 'a', 'A', 'b', 'B', 'p', 'c':
			alpha = true
		}
		re.WriteString(r)
		nm.WriteString(n)
		i += l
	}
	return re.String(), nm.String(), alpha
}

var (
	monthsAbbr = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
	monthsFull = []string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
)

// tzAbbrOffsets holds fail2ban's fixed offsets (minutes east of UTC) of
// the zone abbreviations %z and %Z accept (strptime.py's TZ_STR).
var tzAbbrOffsets = func() map[string]int {
	const table = `-12 Y
-11 X NUT SST
-10 W CKT HAST HST TAHT TKT
-9 V AKST GAMT GIT HADT HNY
-8 U AKDT CIST HAY HNP PST PT
-7 T HAP HNR MST PDT
-6 S CST EAST GALT HAR HNC MDT
-5 R CDT COT EASST ECT EST ET HAC HNE PET
-4 Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT
-3 P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT
-2 O BRST FNT PMDT UYST WGST
-1 N AZOT CVT EGT
0 Z EGST GMT UTC WET WT
1 A CET DFT WAT WEDT WEST
2 B CAT CEDT CEST EET SAST WAST
3 C EAT EEDT EEST IDT MSK
4 D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT
5 E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT
6 F ALMT BIOT BTT IOT KGT NOVT OMST YEKST
7 G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB
8 H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST
9 I AWDT IRKST JST KST PWT TLT WDT WIT YAKT
10 K AEST ChST PGT VLAT YAKST YAPT
11 L AEDT LHDT MAGT NCT PONT SBT VLAST VUT
12 M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT
13 FJST NZDT
11.5 NFT
10.5 ACDT LHST
9.5 ACST
6.5 CCT MMT
5.75 NPT
5.5 SLT
4.5 AFT IRDT
3.5 IRST
-2.5 HAT NDT
-3.5 HNT NST NT
-4.5 HLV VET
-9.5 MART MIT`
	m := map[string]int{"": 0}
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		h, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			panic(err)
		}
		for _, z := range f[1:] {
			m[z] = int(h * 60)
		}
	}
	return m
}()

// ZoneOffset returns the offset east of UTC of a zone written as fail2ban
// accepts it in a log line or in a jail's logtimezone: an optional
// abbreviation from fail2ban's table (UTC, GMT, Z, CET, PST, ...) followed
// by an optional [+-]hh, [+-]hhmm or [+-]hh:mm offset.
func ZoneOffset(zone string) (time.Duration, error) {
	i := 0
	for i < len(zone) && i < 5 && zone[i] >= 'A' && zone[i] <= 'Z' {
		i++
	}
	if i == 2 {
		// the abbreviation is 1 or 3-5 capitals
		return 0, fmt.Errorf("datetime: unknown or unsupported time zone %q", zone)
	}
	abbr, rest := zone[:i], zone[i:]
	if i < len(zone) && (rest[0] >= 'A' && rest[0] <= 'Z') {
		return 0, fmt.Errorf("datetime: unknown or unsupported time zone %q", zone)
	}
	base, ok := tzAbbrOffsets[abbr]
	if !ok {
		return 0, fmt.Errorf("datetime: unknown time zone abbreviation %q", abbr)
	}
	min := 0
	if rest != "" {
		if !validOffset(rest) {
			return 0, fmt.Errorf("datetime: unknown or unsupported time zone %q", zone)
		}
		hh, _ := strconv.Atoi(rest[1:3])
		mm := 0
		switch {
		case len(rest) == 5:
			mm, _ = strconv.Atoi(rest[3:5])
		case len(rest) == 6:
			mm, _ = strconv.Atoi(rest[4:6])
		}
		min = hh*60 + mm
		if rest[0] == '-' {
			min = -min
		}
	}
	return time.Duration(base+min) * time.Minute, nil
}

// validOffset reports whether s is [+-][01]d, optionally followed by two
// digits, optionally after a colon.
func validOffset(s string) bool {
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	if len(s) < 3 || (s[0] != '+' && s[0] != '-') || (s[1] != '0' && s[1] != '1') || !isDigit(s[2]) {
		return false
	}
	switch len(s) {
	case 3:
		return true
	case 5:
		return isDigit(s[3]) && isDigit(s[4])
	case 6:
		return s[3] == ':' && isDigit(s[4]) && isDigit(s[5])
	}
	return false
}

// fields are the strptime fields captured from a line by directive
// letter, "" when absent.
// field is one strptime directive's text, by the directive's letter.
type field struct {
	name  byte
	value string
}

// fieldValue returns the text of the field named k, or "".
func fieldValue(fs []field, k byte) string {
	for _, f := range fs {
		if f.name == k {
			return f.value
		}
	}
	return ""
}

// toTime converts captured strptime fields to a time, as fail2ban's
// strptime.reGroupDictStrptime does: a missing year is now's year, and the
// previous year if that puts the date more than a day after now; a missing
// month and day are today, and yesterday if that is after now; a zone
// written in the line wins over loc. %f is kept as nanoseconds (fail2ban
// drops it). ok is false for impossible dates (31 February, hour 24,
// second 60, an unknown zone name), which fail2ban rejects too.
//
// fs holds the fields found, non-empty, in the order of their letters.
func toTime(fs []field, loc *time.Location, now time.Time) (time.Time, bool) {
	year, month, day := -1, -1, -1
	hour, minute, second, nsec := 0, 0, 0, 0
	julian := -1
	var zone *time.Location
	atoi := func(s string) int {
		// Fast path: one or more ASCII digits, as nearly every log writes.
		n := 0
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c < '0' || c > '9' || i > 8 {
				n, _ = strconv.Atoi(asciiDigits(strings.TrimSpace(s)))
				return n
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	index := func(list []string, s string) int {
		// The names are lower-case ASCII: on ASCII text, ASCII case
		// folding is lower-casing.
		fold := isASCII(s)
		if !fold {
			s = strings.ToLower(s)
		}
		for i, v := range list {
			if v == s || fold && strings.EqualFold(v, s) {
				return i + 1
			}
		}
		return -1
	}
	for _, fl := range fs {
		k, v := fl.name, fl.value
		if k < 'A' || k > 'z' {
			continue
		}
		switch k {
		case 'y':
			year = atoi(v)
			if year <= 2000 {
				year += 2000
			}
		case 'Y':
			year = atoi(v)
		case 'm':
			month = atoi(v)
		case 'b':
			if month = index(monthsAbbr, v); month < 0 {
				return time.Time{}, false
			}
		case 'B':
			if month = index(monthsFull, v); month < 0 {
				return time.Time{}, false
			}
		case 'd':
			day = atoi(v)
		case 'H':
			hour = atoi(v)
		case 'I':
			hour = atoi(v)
			switch strings.ToLower(fieldValue(fs, 'p')) {
			case "", "am":
				if hour == 12 {
					hour = 0
				}
			case "pm":
				if hour != 12 {
					hour += 12
				}
			}
		case 'M':
			minute = atoi(v)
		case 'S':
			second = atoi(v)
		case 'f':
			nsec = atoi((v + "000000000")[:9])
		case 'j':
			julian = atoi(v)
		case 'z', 'Z':
			if v == "Z" || v == "UTC" || v == "GMT" {
				zone = time.UTC
				continue
			}
			off, err := ZoneOffset(v)
			if err != nil {
				return time.Time{}, false
			}
			zone = time.FixedZone(v, int(off/time.Second))
		}
	}
	if zone != nil {
		loc = zone
	}
	nowLoc := now.In(loc)
	assumeYear := false
	if year < 0 {
		year = nowLoc.Year()
		assumeYear = true
	}
	if (month < 0 || day < 0) && julian > 0 {
		t := time.Date(year, 1, julian, 0, 0, 0, 0, time.UTC)
		year, month, day = t.Year(), int(t.Month()), t.Day()
	}
	assumeToday := false
	if month < 0 && day < 0 {
		month, day = int(nowLoc.Month()), nowLoc.Day()
		assumeToday = true
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || second > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, nsec, loc)
	if assumeToday && t.After(now) {
		t = time.Date(year, time.Month(month), day-1, hour, minute, second, nsec, loc)
	}
	if assumeYear && t.After(now.Add(24*time.Hour)) {
		if day > daysIn(month, year-1) {
			return time.Time{}, false
		}
		t = time.Date(year-1, time.Month(month), day, hour, minute, second, nsec, loc)
	}
	return t, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// asciiDigits replaces the Unicode decimal digits of s (which Python's \d
// and int() accept) by ASCII ones.
func asciiDigits(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf || !unicode.IsDigit(r) {
			return r
		}
		// Nd digits come in runs of ten from zero upwards.
		zero := r
		for zero > 0 && unicode.IsDigit(zero-1) {
			zero--
		}
		return '0' + (r-zero)%10
	}, s)
}
