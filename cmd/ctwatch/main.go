// Command ctwatch tails CloudTower's resource-change feed: it prints
// changes as they happen (a table on a terminal, one JSON object per line
// otherwise), catches up on a backlog quickly and resumes after a restart
// with --checkpoint. Run "ctwatch --help" for the flags, or
// "ctwatch --demo" to see it work without a CloudTower.
//
// The logic lives in internal/cli; this program only wires it to the
// process: arguments, environment, standard streams, and Ctrl-C or
// SIGTERM, which end the watch cleanly (output flushed, checkpoint saved,
// exit code 0). A second Ctrl-C, while that is under way, kills the
// process at once (the checkpoint then may lag the output, never lead it).
package main

import "github.com/towerwatch/towerwatch/internal/cli"

func main() { cli.Main() }
