// Package pipeline turns the records of the source topics into writes of the
// two stores (DESIGN.md §4, §5): Consumer joins the consumer group, decodes
// and validates each partition's records in order, batches them, has the
// version Authority fold and write each batch with the Sink following inside
// its transaction, and commits offsets only below records that are in both
// stores or in the DeadLetter queue.
//
// The pieces, one file each: Options (options.go), the Kafka client options
// shared with cmd (kafka.go), the Consumer and its group callbacks
// (consumer.go), the per-partition worker with batching and backpressure
// (partition.go), delivery with retries, dead-lettering and bisection
// (deliver.go), the checkpointer and committer (checkpoint.go), Hooks for
// metrics (hooks.go), and how delivery cooperates with the stores' circuit
// breakers (down.go; the breakers themselves are package pipeline/breaker). The lead's files hold the types that flow: Record and
// Batch, the error classes, the Authority and Sink interfaces and the fold.
//
// Invariants the tests hold the package to:
//   - a partition's records reach the stores in offset order, one batch at a
//     time;
//   - a committed offset never passes a record that is not in both stores
//     or acknowledged by the DLQ;
//   - a partition holds at most MaxInflightBatches-1 batches of records
//     between fetch and commit plus what one fetch returned for it
//     (FetchMaxPartitionBytes); beyond that its fetching is paused;
//   - at most MaxActiveBatches batches, across all partitions, are decoded
//     or in delivery at once; the other partitions keep their records
//     undecoded until a place is free, taken in the order asked for;
//   - a record that can be neither written nor dead-lettered stops its
//     partition loudly (StoppedError), never silently.
package pipeline
