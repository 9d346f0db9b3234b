// Package source is where edgeban's log lines come from: log files
// followed as they grow and rotate ([Follow]), and the systemd journal
// ([FollowJournal]). Each line comes with the position reached after it,
// to resume there.
//
// A followed file is read to its end and then watched. Changes are
// noticed through fsnotify events on the file's directory, so a line
// reaches the caller as soon as its write is reported; a polling loop is
// used only when fsnotify cannot be set up or when the caller asks for it
// (fail2ban's "backend = polling").
//
// Rotation is handled the way fail2ban's file backends handle it: a new
// inode at the path (rename and create, or delete and create) makes the
// old file be read to its end before the new one is read from offset 0;
// a file that shrinks below the read offset (copytruncate) or whose first
// line changes is read again from offset 0. A file that is deleted is
// read to its end and closed, and the path is then waited for.
//
// A [Position] records where reading stopped as fail2ban's database
// does: the MD5 of the file's first line and the byte offset after the
// last complete line. Passing it back in [Options.Start] resumes there
// if the file is still the same one. If it is not, and an uncompressed
// rotated copy (path.N or path-SUFFIX) has that first line, the rest of
// that copy is read before the new file, so that a rotation while edgeban
// was stopped loses no line.
//
// The journal is read by a journalctl child process (journalctl --follow
// --output=export), not through libsystemd: edgeban stays one static
// binary built without cgo, and journalctl, which every systemd system
// has, reads every journal file format and compression its systemd
// writes. The export format is the journal's own lossless serialization:
// binary and multi-line fields come through as they are, with no size
// limit (journalctl's JSON turns fields over 4 KiB into null). Each entry
// is made into the line fail2ban's systemd backend makes of it, "HOST
// IDENT[PID]: MESSAGE", and comes with its time from the journal and its
// cursor. When journalctl exits it is started again after a growing wait,
// after the cursor of the last entry handed out, so that no entry is lost
// or handed out twice.
package source
