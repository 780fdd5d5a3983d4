// Command ctwatch is towerwatch's ctwatch with NATS JetStream: every flag
// of the plain command (github.com/towerwatch/towerwatch/cmd/ctwatch), plus
//
//	--publish nats://host:4222    bridge mode: publish CloudTower's changes
//	                              into a JetStream stream instead of printing
//	                              them (see package bridge)
//	--from-nats nats://host:4222  read the changes from that stream instead
//	                              of CloudTower (see package source)
//
// Bridge mode resumes after the last change on the stream, so a restarted
// or second bridge neither loses nor duplicates a change; run two or more
// for failover: one publishes, the others stand by. --from, when the
// stream is empty, says where the first bridge starts (the default is
// CloudTower's head). A reader with --from-nats starts where --from,
// --from-now or --checkpoint say, exactly as against CloudTower.
//
//	ctwatch --server tower.example.com --username admin --publish nats://127.0.0.1:4222
//	ctwatch --demo --publish nats://127.0.0.1:4222   # bridge the embedded demo CloudTower
//	ctwatch --from-nats nats://127.0.0.1:4222 --from 0 --types Vm
//
// Ctrl-C or SIGTERM end either mode cleanly (exit code 0); a bridge then
// hands the leadership over at once.
package main

import "github.com/towerwatch/towerwatch/internal/cli"

func main() { cli.Main(newNATS().Extension()) }
