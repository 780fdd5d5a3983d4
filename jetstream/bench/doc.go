// Package bench holds the jetstream module's benchmarks; it has no API.
// See bridge_test.go for what they measure and how to run them.
package bench
