// Package source is edgeban's log file backend: it follows log files as
// they grow and rotate, and hands out complete lines together with the
// position reached after each one.
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
package source
