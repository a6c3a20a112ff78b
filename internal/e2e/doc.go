// Package e2e holds ragstream's end-to-end acceptance tests of the ingest
// pipeline: real Apache Kafka and real Neo4j (RAGSTREAM_TEST_KAFKA_BROKERS,
// RAGSTREAM_TEST_NEO4J_URI, started by scripts/services.sh), and Qdrant
// through qdranttest.Target: the in-process stand-in, or a real Qdrant when
// RAGSTREAM_TEST_QDRANT_ADDR is set. Only the tests that need the stand-in's
// fault injection start the stand-in directly.
//
// The tests produce streams (internal/sample or hand-written events), run the
// worker — the in-process pipeline.Consumer with the real sinks, or the
// ragstream binary — wait until the group has committed the whole topic
// (kadm), and compare both stores with the state the stream must end in,
// folded independently from the produced records.
package e2e
