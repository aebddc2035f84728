// Package actorpb holds the protobuf messages of Corral's actor tree that may
// cross nodes. It is generated from corral.proto by gen.sh (`make proto`);
// edit the .proto, never the .pb.go. It must never carry Go-only values
// (connections, channels): anything that cannot be serialised stays in
// package actors as a plain Go message.
package actorpb
