// Package e2e holds the end-to-end tests of the jetstream module: a fake
// CloudTower over loopback HTTP, bridges publishing into a NATS server
// with JetStream embedded in the test process, and consumers reading the
// stream back through package source. It has no API.
package e2e
