// Package jail holds what a jail decides, as fail2ban decides it: which
// addresses have failed often enough within findtime to be banned, for
// how long (bantime and its increment for repeat offenders), and how much
// a repeat offender's failures weigh.
package jail
