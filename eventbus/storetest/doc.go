// Package storetest holds the event-stream conformance tests that every
// kind of eventbus Store must pass: the single-node file store (eventbus's
// own tests) and the replicated store (eventbus/jetstream's tests, with a
// JetStream Replica). Run them with Run and an Opener.
//
// Tests here must never reach into eventbus internals (only its exported
// API), never sleep as synchronisation, and never depend on which store
// they run against.
package storetest
