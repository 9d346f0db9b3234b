// Package action runs fail2ban's shell-command actions (action.d): it
// reads an action's definition for a jail as fail2ban does, with the
// jail's parameters, [Init] defaults and <tag> substitution.
package action
