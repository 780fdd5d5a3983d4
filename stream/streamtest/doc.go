// Package streamtest helps test stream Sources and code built on them:
// Feed is an in-memory change feed with fault injection that implements
// stream.Source, for tests of consumers and operators.
package streamtest
